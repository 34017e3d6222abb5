"""SUT profiles: the shipped ones load; a broken one gets every problem at once, with its path, no secrets."""

from pathlib import Path

import pytest
import yaml

from conformance.binding import load_binding
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
def test_shipped_profiles_load(path):
    data = yaml.safe_load(path.read_text())
    if "sut" in data:
        profile = load_profile(path)
        assert profile.binding["transport.udp_port"] == profile.hse_endpoint[1]
    else:  # a binding agreement, not a profile
        load_binding(path)


def test_reference_profile_content():
    profile = load_profile(PROFILES / "reference-hse.yaml")
    assert profile.sut.kind == "hse" and len(profile.pixit.subscribers) == 4
    assert profile.pixit.subscribers[2].services == ["key_agreement_only"]
    assert profile.pixit.subscribers[3].modes == ["ue_to_eas"]
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
        "sut.kind: Input should be 'hse', 'emks' or 'emse', got 'hsx'",
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
