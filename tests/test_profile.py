"""SUT profiles: the shipped ones load; a broken one gets every problem at once, with its path, no secrets."""

import shutil
from pathlib import Path

import pytest
import yaml

from conformance.binding import load_binding
from conformance.keyserver.certs import CertificateDirectory
from conformance.profile import ProfileError, load_profile

PROFILES = Path(__file__).resolve().parent.parent / "profiles"
K = "465b5ce8b199b49faa5f0a2ee238a6bc"


def minimal(**changes):
    data = {
        "sut": {"kind": "hse", "vendor": "ACME", "product": "HSE-1"},
        "pixit": {"subscribers": [{"imsi": "001010123456789", "k": K, "opc": K}]},
    }
    data.update(changes)
    return data


@pytest.mark.parametrize("path", sorted(PROFILES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_profiles_load(path, tmp_path):
    data = yaml.safe_load(path.read_text())
    if "sut" not in data:  # a binding agreement, not a profile
        load_binding(path)
        return
    if data.get("tls"):  # the template names a lab's certificate files: they load once they exist, beside it
        copy = tmp_path / path.name
        copy.write_text(path.read_text())
        _issue_tls_files(data["tls"], tmp_path)
        path = copy
    profile = load_profile(path)
    assert profile.binding["transport.udp_port"] == profile.hse_endpoint[1]


def _issue_tls_files(tls, folder):
    """Real PEM files at the paths a profile's tls section names (relative to `folder`)."""
    certs = CertificateDirectory(folder / "issued")
    pairs = [(tls["cert"], tls["key"])] + [(c["cert"], c["key"]) for c in tls.get("clients", {}).values()]
    pairs += [(tls["receiver"]["cert"], tls["receiver"]["key"])] if "receiver" in tls else []
    issued = certs.client("any")
    for cert, key in pairs:
        for name, source in ((cert, issued.cert), (key, issued.key)):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, folder / name)
    shutil.copyfile(certs.ca, folder / tls["ca"])


def test_every_tls_file_is_checked_at_load_naming_field_and_path(tmp_path):
    """A profile copied from the template without its certificate files fails at load, not minutes into a run."""
    copy = tmp_path / "my-hse.yaml"
    copy.write_text((PROFILES / "template-hse.yaml").read_text())
    with pytest.raises(ProfileError) as caught:
        load_profile(copy)
    problems = caught.value.problems
    expected = ["tls.ca", "tls.cert", "tls.key", "tls.clients.eas2.example.com.cert", "tls.receiver.key"]
    for field in expected:
        assert any(p.startswith(f"{field}: no such file") for p in problems), (field, problems)
    assert any(str(tmp_path / "certs" / "acme-ca.pem") in p for p in problems)  # relative to the profile


def test_a_tls_file_of_the_wrong_kind_is_named(tmp_path):
    data = yaml.safe_load((PROFILES / "template-hse.yaml").read_text())
    _issue_tls_files(data["tls"], tmp_path)
    (tmp_path / data["tls"]["ca"]).write_text("not a certificate")
    (tmp_path / data["tls"]["key"]).write_text("-----BEGIN CERTIFICATE-----")
    copy = tmp_path / "my-hse.yaml"
    copy.write_text(yaml.safe_dump(data))
    with pytest.raises(ProfileError) as caught:
        load_profile(copy)
    assert any(p.startswith("tls.ca: not a PEM certificate") for p in caught.value.problems)
    assert any(p.startswith("tls.key: not a PEM private key") for p in caught.value.problems)


def test_reference_profile_content():
    profile = load_profile(PROFILES / "reference-hse.yaml")
    assert profile.sut.kind == "hse" and len(profile.pixit.subscribers) == 5
    assert profile.pixit.subscribers[2].services == ["key_agreement_only"]
    assert profile.pixit.subscribers[3].modes == ["ue_to_eas"]
    assert profile.pixit.subscribers[4].key_agreements == ["umts"]  # HSE-KA-005: EPS AKA refused to it
    assert profile.pixit.serving_network_id == bytes.fromhex("00f110")  # MCC 001, MNC 01: EPS AKA's SN id
    first = profile.pixit.subscribers[0]
    assert first.k == bytes.fromhex(K) and first.amf == bytes.fromhex("8000")
    assert {k.profile for k in profile.pixit.home_network_keys} == {"A", "B"}


def test_defaults_and_binding_overrides():
    profile = load_profile(minimal(binding={"transport.udp_port": 4000}, endpoints={"hse": {"host": "::1"}}))
    assert profile.hse_endpoint == ("::1", 4000)
    assert profile.binding.param("transport.udp_port").basis == "override"


def test_every_problem_at_once_with_paths_and_no_secrets():
    secret = "0123456789abcdef0123456789abcd"  # 15 octets: wrong, and must not be echoed
    bad = minimal(
        sut={"kind": "hsx", "vendor": "v"},
        pixit={
            "subscribers": [
                {"imsi": "12a", "k": secret, "opc": K, "services": ["up_fast"]},
                {"imsi": "001010123456789", "k": K},
            ],
            "reply_timeout": -1,
        },
        binding={"transport.udp_prot": 5},
        reference={"faults": ["nope"]},
        colour="blue",
    )
    with pytest.raises(ProfileError) as err:
        load_profile(bad)
    text = str(err.value)
    for expected in (
        "sut.kind: Input should be 'hse', 'emks', 'emse' or 'ue', got 'hsx'",
        "sut.product: required field missing",
        "pixit.subscribers[0].imsi: expected 6 to 15 digits, got '12a'",
        "pixit.subscribers[0].k: expected 16 octets as hex (32 hex digits), got 15 octets",
        "pixit.subscribers[1]: give exactly one of op and opc",
        "pixit.reply_timeout: Input should be greater than 0",
        "colour: unknown field",
        "binding.transport.udp_prot: unknown parameter; did you mean transport.udp_port?",
        "pixit.subscribers[0].services[0]: 'up_fast' is not one of",
        "reference.faults: unknown fault(s) nope",
    ):
        assert expected in text, expected
    assert len(err.value.problems) == 10
    assert secret not in text and K not in text


def test_a_secret_in_a_wrong_format_is_not_echoed():
    with pytest.raises(ProfileError) as err:
        load_profile(minimal(pixit={"subscribers": [{"imsi": "001010123456789", "k": "secret-zz", "opc": K}]}))
    assert "secret-zz" not in str(err.value) and "not shown: a secret" in str(err.value)


@pytest.mark.parametrize(
    ("content", "message"), [(None, "cannot read"), ("a: [", "not valid YAML"), ("- 1", "mapping")]
)
def test_unreadable_profile_files(tmp_path, content, message):
    path = tmp_path / "p.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ProfileError, match=message):
        load_profile(path)


def test_a_non_hex_key_is_called_not_hex_and_never_shown():
    data = minimal()
    data["pixit"]["subscribers"][0]["k"] = "zz" + K[2:]
    with pytest.raises(ProfileError) as caught:
        load_profile(data)
    (problem,) = caught.value.problems
    assert problem.startswith("pixit.subscribers[0].k: ") and "not hex" in problem
    assert K[2:] not in problem and "zz" not in problem


# -- pixit.subscriber_ranges ----------------------------------------------------------------------------------------

SECRET = "000102030405060708090a0b0c0d0e0f"  # the published test secret of the reference profiles


def ranged(*ranges, subscribers=None):
    pixit = {"subscribers": subscribers or [{"imsi": "001010123456789", "k": K, "opc": K}]}
    pixit["subscriber_ranges"] = [{"rule": "hmac-sha256", "secret": SECRET, **r} for r in ranges]
    return minimal(pixit=pixit)


def test_a_subscriber_is_derived_by_the_stated_rule():
    """K and OPc as `openssl dgst -sha256 -mac HMAC -macopt hexkey:SECRET` gives them for "K001010100000000" and
    "OPc001010100000000" (first 16 octets), computed outside the harness."""
    from conformance.subscriber_ranges import find, subscriber_at

    profile = load_profile(ranged({"first_imsi": "001010100000000", "count": 100000, "eas_ids": ["eas.example.com"]}))
    (rng,) = profile.pixit.subscriber_ranges
    first = subscriber_at(rng, 0)
    assert first.imsi == "001010100000000" and first.op is None and first.eas_ids == ["eas.example.com"]
    assert first.k.hex() == "5e3da707d722c464adf1dcab484f454e"
    assert first.opc.hex() == "66b0aa96575c85589ed211c2e406738b"
    last = find(profile.pixit.subscriber_ranges, "001010100099999")
    assert last == subscriber_at(rng, 99999) and last.k.hex() == "093c71d0cf373db5ed7ac5b2bb5393f0"
    assert find(profile.pixit.subscriber_ranges, "001010100100000") is None
    with pytest.raises(IndexError):
        subscriber_at(rng, 100000)


def test_a_million_subscribers_load_at_once():
    import time

    from conformance.subscriber_ranges import find

    start = time.perf_counter()
    profile = load_profile(ranged({"first_imsi": "001010200000000", "count": 1_000_000}))
    assert find(profile.pixit.subscriber_ranges, "001010200999999").imsi == "001010200999999"
    assert time.perf_counter() - start < 0.5


def test_a_wrong_range_names_the_field_and_the_fix_and_never_the_secret():
    bad = ranged(
        {"first_imsi": "001010123456700", "count": 100},  # holds the listed subscriber
        {"first_imsi": "001010123456750", "count": 10},  # overlaps the first range
        {"first_imsi": "999999999999990", "count": 20},  # runs past 15 digits
        {"first_imsi": "001010300000000", "count": 1, "secret": "0011", "services": ["up_fast"]},
        {"first_imsi": "001010400000000", "count": 1, "secret": "secret-zz" + SECRET, "rule": "sha1"},
    )
    with pytest.raises(ProfileError) as err:
        load_profile(bad)
    text = str(err.value)
    for expected in (
        "pixit.subscriber_ranges[2]: count: 20 IMSIs from 999999999999990 do not fit in 15 digits; at most 10",
        "pixit.subscriber_ranges[3].secret: expected at least 16 octets as hex (32 hex digits), got 2 octets",
        "pixit.subscriber_ranges[3].services[0]: 'up_fast' is not one of",
        "pixit.subscriber_ranges[4].rule: Input should be 'hmac-sha256'",
        "pixit.subscriber_ranges[4].secret: expected octets as hex",
    ):
        assert expected in text, expected
    assert "secret-zz" not in text and SECRET not in text and "not shown: a secret" in text
    with pytest.raises(ProfileError, match=r"IMSI 001010123456789 of pixit.subscribers\[0\] falls inside the range"):
        load_profile(ranged({"first_imsi": "001010123456700", "count": 100}))
    with pytest.raises(ProfileError, match=r"subscriber_ranges\[1\] .* overlaps subscriber_ranges\[0\].*disjoint"):
        load_profile(
            ranged({"first_imsi": "001010100000000", "count": 100}, {"first_imsi": "001010100000050", "count": 1})
        )


def test_the_range_secret_is_masked_like_k():
    from conformance.masking import profile_secrets

    profile = load_profile(PROFILES / "reference-emks.yaml")
    dumped = profile.pixit.model_dump(mode="json")
    assert SECRET in str(dumped) and SECRET not in str(profile_secrets(profile).scrub(dumped))
