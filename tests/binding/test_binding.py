"""The binding: defaults with sources, typed overrides, whole-binding consistency, clear errors."""

import json
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from conformance.binding import Alternative, BindingError, load_binding
from conformance.binding.loader import _alternatives
from conformance.binding.types import parse_type
from conformance.crypto.keys import ROOT_NAMES

DEFAULT = load_binding()
PACKAGE = Path(__file__).resolve().parents[2] / "conformance"

# Digest section 10, item by item, and the binding keys that settle each open point.
DIGEST_OPEN_POINTS = {
    "1 transport and UDP port": ["transport.kind", "transport.udp_port"],
    "2 header profile": [
        "emsdp.header.fields",
        "emsdp.header.version_bits",
        "emsdp.header.version_value",
        "emsdp.header.rfu_bits",
        "emsdp.header.key_id_bits",
        "emsdp.header.session_id_bits",
        "emsdp.header.command_bits",
        "emsdp.header.checksum_bits",
        "emsdp.counters.cp_bits_by_scheme",
        "emsdp.counters.up_bits_by_scheme",
        "protection.mac.bits",
        "protection.mac.take",
        "protection.mac.covers",
    ],
    "3 TLV tags": ["emsdp.tlv.tags.imsi", "emsdp.tlv.tags.suci", "emsdp.tlv.tag_bytes", "emsdp.tlv.length_bytes"],
    "4 TLV inner layouts": [
        "emsdp.ue_config.release_octet",
        "emsdp.ue_config.key_agreement_bits.5g_aka",
        "emsdp.ue_config.confidentiality_requested_bit",
        "emsdp.hse_config.fields",
        "emsdp.hse_config.services.up_confidential",
        "emsdp.hse_config.modes.ue_to_eas",
        "emsdp.serving_network.encoding",
    ],
    "5 command TLV lists": [
        f"emsdp.tlv_lists.{c}_mandatory"
        for c in (
            "session_request",
            "session_start",
            "session_start_confirmation",
            "session_terminate_request",
            "session_terminate_response",
            "manage_keys_request",
            "manage_keys_response",
            "message_reject",
        )
    ],
    "6 reject causes and error policy": ["emsdp.reject_causes.invalid_mac", "emsdp.error_reaction.invalid_mac"],
    "7 keys below KHSE, MAC and cipher": [
        "keys.derivations.kint.fc",
        "keys.derivations.kint_enc.params",
        "keys.derivations.kint_enc.take",
        "protection.mac.algorithm",
        "protection.cipher.algorithm",
        "protection.count.layout",
        "protection.count.align",
        "protection.count.direction_uplink",
    ],
    "8 KInt_EAS_PSK and key identifier": [
        "keys.derivations.kint_eas_psk.params",
        "keys.key_identifier.scheme",
        "keys.key_identifier.bits",
    ],
    "9 REST": [
        "rest.paths.register",
        "rest.paths.ue_key",
        "rest.status.registered",
        "rest.xml.client_id",
        "rest.content_type",
        "rest.status.deregistered",
    ],
    "10 serving network and SUCI format": ["emsdp.serving_network.encoding", "suci.format"],
    "11 counter wrap and key refresh": ["emsdp.counters.refresh_margin", "emsdp.counters.on_wrap"],
    "12 release": ["release.ts33163"],
}


@pytest.mark.parametrize("item", DIGEST_OPEN_POINTS)
def test_every_open_point_of_the_digest_is_a_binding_parameter(item):
    for key in DIGEST_OPEN_POINTS[item]:
        assert key in DEFAULT, f"digest 10 item {item}: {key} missing from the binding"


def test_every_parameter_has_a_source_of_a_known_kind():
    for p in DEFAULT.parameters():
        assert p.basis in {"spec", "contribution", "assumed"}, (p.key, p.source)
        if p.basis == "assumed":
            reason = p.source.removeprefix("assumed:").strip()
            sibling = re.fullmatch(r"as (\w+)", reason)
            if sibling:  # "as <sibling>": the same reason as a neighbouring parameter, which must exist
                group = p.key.rsplit(".", 1)[0]
                sibling_group = group.rsplit(".", 1)[0]
                assert f"{group}.{sibling[1]}" in DEFAULT or any(
                    k.startswith(f"{sibling_group}.{sibling[1]}.") for k in DEFAULT
                ), (p.key, reason)
            else:
                assert len(reason) >= 12, f"{p.key}: say why it is assumed"


def test_confirmed_values_cite_a_clause():
    for p in DEFAULT.parameters():
        if p.confirmed:
            assert re.match(r"(TS|TR) \d\d\.\d{3} ", p.source), (p.key, p.source)


def test_the_digest_confirmed_values_are_marked_confirmed():
    for key, value in (
        ("emsdp.tlv.tags.imsi", 0x01),
        ("emsdp.commands.session_request", 0x10),
        ("emsdp.commands.message_reject", 0x80),
        ("keys.derivations.khse.fc", 0x63),
        ("keys.derivations.khse_eap_aka_prime.fc", 0x64),
        ("emsdp.header.key_id_bits", 3),
        ("tls.min_version", "TLSv1.2"),
    ):
        assert DEFAULT[key] == value and DEFAULT.param(key).confirmed, key
    for key in ("transport.udp_port", "emsdp.tlv.tags.suci", "keys.derivations.kint.fc", "rest.paths.ue_key"):
        assert DEFAULT.param(key).basis == "assumed", key


def test_overrides_nested_dotted_and_with_their_own_source(tmp_path):
    profile = tmp_path / "sut.yaml"
    profile.write_text(
        yaml.safe_dump(
            {
                "sut": {"vendor": "ACME"},
                "binding": {
                    "transport": {"udp_port": 4000},
                    "emsdp.tlv.tags.suci": {"value": 0x22, "source": "plugfest 2026-11 agreement"},
                },
            }
        )
    )
    b = load_binding(profile, {"transport.udp_port": 4001})
    assert b["transport.udp_port"] == 4001  # later layers win
    assert b.param("transport.udp_port").default == 31163
    assert b.param("transport.udp_port").overridden_by == "overrides"
    suci = b.param("emsdp.tlv.tags.suci")
    assert (suci.value, suci.source, suci.basis, suci.overridden_by) == (
        0x22,
        "plugfest 2026-11 agreement",
        "override",
        str(profile),
    )
    assert DEFAULT["transport.udp_port"] == 31163  # the defaults are untouched


def test_a_plain_binding_file_without_binding_section(tmp_path):
    f = tmp_path / "agreement.yaml"
    f.write_text("protection:\n  mac:\n    bits: 32\n")
    assert load_binding(f)["protection.mac.bits"] == 32


def test_all_problems_are_listed_at_once_each_naming_its_key():
    with pytest.raises(BindingError) as err:
        load_binding(
            {
                "transport": {"udp_prot": 4000, "kind": "tcp"},
                "emsdp.tlv.tags.suci": 300,
                "emsdp.header.session_id_bits": "16",
                "protection.mac.absent_when_key_id_zero": "yes",
                "emsdp.tlv": 3,
                "keys.derivations.kint.params": ["utf8:x", "no such!"],
            }
        )
    problems = "\n".join(err.value.problems)
    assert len(err.value.problems) == 7, problems
    for expected in (
        "transport.udp_prot: unknown parameter; did you mean transport.udp_port?",
        "transport.kind: expected one of udp, raw-non-ip, scef-nidd, got 'tcp' (str)",
        "emsdp.tlv.tags.suci: expected uint8 (an integer 0..255), got 300 (int)",
        "emsdp.header.session_id_bits: expected an integer 8..32, got '16' (str)",
        "protection.mac.absent_when_key_id_zero: expected true or false, got 'yes' (str)",
        "emsdp.tlv: unknown parameter; it is a group: give one of length_bytes, tag_bytes, tags",
        "keys.derivations.kint.params[1]: expected a KDF input",
    ):
        assert expected in problems


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"transport.udp_port": {}}, "transport.udp_port: empty mapping"),
        ({"transport": {"udp_port": {"port": 1}}}, "transport.udp_port: is a parameter; give its value directly"),
    ],
)
def test_a_mapping_where_a_value_belongs_is_named(override, message):
    with pytest.raises(BindingError) as err:
        load_binding(override)
    assert any(message in p for p in err.value.problems), err.value.problems


def test_override_mapping_with_extra_fields_is_refused():
    with pytest.raises(BindingError, match="only 'value' and optionally 'source'"):
        load_binding({"transport.udp_port": {"value": 1, "type": "str"}})


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"emsdp.tlv.tags.suci": 0x01}, "emsdp.tlv.tags.suci: value 0x01 is also used by emsdp.tlv.tags.imsi"),
        ({"emsdp.commands.session_start": 0x10}, "also used by emsdp.commands.session_request"),
        ({"emsdp.header.session_id_bits": 12}, "not a whole number of octets"),
        ({"emsdp.counters.cp_bits_by_scheme": [3, 11]}, "same, non-zero number of schemes"),
        ({"emsdp.counters.default_scheme": 9}, "is not a scheme of cp_bits_by_scheme"),
        ({"emsdp.header.fields": ["up_cp", "key_id", "counter", "counter"]}, "a field appears twice"),
        ({"emsdp.header.fields": ["up_cp", "rfu", "counter", "session_id"]}, "must contain key_id"),
        ({"emsdp.header.version_bits": 8}, "has no 'version'"),
        ({"emsdp.header.fields": ["rfu", "key_id", "counter", "up_cp", "session_id"]}, "up_cp must precede counter"),
        ({"emsdp.tlv_lists.session_start_mandatory": ["rand", "autm"]}, "'autm' is not a TLV"),
        ({"keys.derivations.kint.key": "kint_enc"}, "derivation cycle kint -> kint_enc -> kint"),
        ({"keys.derivations.kint.key": "kseaf"}, "'kseaf' is neither a derivation nor one of"),
        ({"keys.root_by_key_agreement.eps": "kamf"}, "'kamf' is neither ck_ik nor a derivation"),
        ({"keys.derivations.kint_eas_psk.fc": 0xF2}, "the two keys would be equal"),
        ({"keys.derivations.kint.out_bits": 100}, "out_bits: must be a whole number of octets"),
        ({"protection.mac.bits": 60}, "protection.mac.bits: must be a whole number of octets"),
        ({"rest.paths.ue_key": "/keys/{imsi}"}, "rest.paths.ue_key: must start with '/' and use only"),
        ({"rest.paths.register": "registrations"}, "rest.paths.register: must start with '/'"),
        ({"dtls.psk_identity": "{ue_id}{key_id}"}, "dtls.psk_identity: must hold {ue_id} and {key_id} once"),
        ({"dtls.psk_identity": "{ue_id}"}, "dtls.psk_identity: must hold {ue_id} and {key_id} once"),
    ],
)
def test_inconsistent_bindings_are_refused(override, message):
    with pytest.raises(BindingError, match="inconsistent") as err:
        load_binding(override)
    assert any(message in p for p in err.value.problems), err.value.problems


def test_a_consistent_change_of_header_width_is_accepted():
    b = load_binding(
        {
            "emsdp.header.session_id_bits": 8,
            "emsdp.header.version_bits": 8,
            "emsdp.header.fields": ["version", "up_cp", "rfu", "key_id", "counter", "session_id"],
        }
    )
    assert b["emsdp.header.fields"][0] == "version"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("a: [1, 2", "not valid YAML"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("binding: 5\n", "binding: expected a mapping"),
    ],
)
def test_unreadable_files_are_named(tmp_path, content, message):
    f = tmp_path / "p.yaml"
    if content is not None:
        f.write_text(content)
    with pytest.raises(BindingError, match=message) as err:
        load_binding(f)
    assert str(f) in str(err.value)


def test_empty_file_and_empty_binding_section_mean_defaults(tmp_path):
    empty, section = tmp_path / "empty.yaml", tmp_path / "section.yaml"
    empty.write_text("")
    section.write_text("binding:\n")
    assert dict(load_binding(empty)) == dict(load_binding(section)) == dict(DEFAULT)


def test_mapping_access_and_sections():
    assert DEFAULT.section("emsdp.tlv.tags")["imsi"] == 1
    assert DEFAULT.children("keys.derivations")[:2] == ["kasme", "ck_ik_prime"]
    with pytest.raises(KeyError, match=r"did you mean transport\.udp_port"):
        DEFAULT["transport.udp_prot"]
    with pytest.raises(KeyError, match="not a binding group"):
        DEFAULT.section("emsdp.tlvs")


def test_document_for_reports_is_json_and_marks_overrides():
    b = load_binding({"transport.udp_port": 4000})
    doc = json.loads(json.dumps(b.to_document()))
    assert doc["transport.udp_port"] == {
        "value": 4000,
        "source": "override from overrides",
        "basis": "override",
        "default": 31163,
        "overridden_by": "overrides",
    }
    assert doc["emsdp.tlv.tags.imsi"]["basis"] == "spec"
    assert {p.key for p in b.not_confirmed()} >= {"transport.udp_port", "emsdp.tlv.tags.suci"}


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=20), st.floats(allow_nan=False)
)
values = st.one_of(scalars, st.lists(scalars, max_size=4), st.dictionaries(st.text(max_size=5), scalars, max_size=3))


@given(key=st.sampled_from(sorted(DEFAULT)), value=values)
def test_any_override_loads_or_is_refused_with_a_binding_error(key, value):
    """Whatever a person writes in a profile, the answer is a binding or a BindingError, never a traceback."""
    try:
        b = load_binding({key: value})
    except BindingError as err:
        assert err.problems and all(isinstance(p, str) for p in err.problems)
    else:
        assert b[key] == (value["value"] if isinstance(value, dict) else value)


# ---- no unconfirmed value is a literal outside the default binding (issue 2, "Done means") ----------------


def _distinctive_literals():
    """Values of non-confirmed parameters that code could only contain by copying them: FC values, numbers
    of four digits or more, free-text strings and utf8: KDF literals. Names the code must know (enum
    members, header fields, KDF input names, derivation names) and small widths are vocabulary, not values."""
    vocabulary = set(DEFAULT.children("keys.derivations")) | set(DEFAULT.section("emsdp.tlv.tags")) | set(ROOT_NAMES)
    found = {}
    for p in DEFAULT.not_confirmed():
        values = p.value if isinstance(p.value, list) else [p.value]
        for v in values:
            if isinstance(v, bool):
                continue
            if isinstance(v, int) and (v >= 1000 or p.key.endswith(".fc")):
                found.setdefault(v, p.key)
            elif isinstance(v, str) and v.startswith("utf8:"):
                found.setdefault(v.removeprefix("utf8:"), p.key)
            elif (
                isinstance(v, str)
                and p.type == "str"
                and len(v) >= 6
                and v not in vocabulary
                and not p.key.endswith(".label")
            ):  # key names are names, not values
                found.setdefault(v, p.key)
    return found


def test_no_unconfirmed_value_is_hard_coded_in_the_package():
    literals = _distinctive_literals()
    assert 0xF0 in literals and "/best/v1/registrations" in literals and "e2m_CIoT" in literals
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        code = path.read_text(encoding="utf-8")
        for value, key in literals.items():
            if isinstance(value, int):
                pattern = rf"(?<![\w.])(?:{value}|0x0*{value:x}|0X0*{value:X})(?![\w.])"
            else:
                pattern = re.escape(value)
            if re.search(pattern, code):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}: {value!r} (binding {key})")
    assert not offenders, "read these from the binding instead:\n" + "\n".join(offenders)


# ---- alternatives: the values `best-conformance probe` searches (issue 16) -----------------------------------

# What the default binding offers the probe (tests/reference/test_binding_alternatives.py shows each one works
# on both sides and that the default harness cannot test a SUT speaking it).
SEARCHED = {
    "emsdp.header.fields",
    "emsdp.tlv.tags.hse_config",
    "emsdp.tlv.tags.rand",
    "emsdp.tlv.tags.autn",
    "emsdp.tlv.tags.res",
    "protection.mac.take",
    "protection.mac.covers",
    "protection.count.align",
    "keys.derivations.kint_int.fc",
    "keys.derivations.ke2m_int.fc",
    "keys.derivations.ke2m_enc.fc",
}


def test_the_parameters_with_alternatives_are_few_and_each_says_why():
    params = DEFAULT.with_alternatives()
    assert {p.key for p in params} == SEARCHED
    assert [p.key for p in params] == [k for k in DEFAULT if k in SEARCHED]  # file order
    assert [a.value for a in DEFAULT.param("protection.count.align").alternatives] == ["msb"]
    for p in params:
        assert 1 <= len(p.alternatives) <= 3, p.key
        for a in p.alternatives:
            assert isinstance(a, Alternative) and len(a.source) >= 40, (p.key, a)
            assert not parse_type(p.type).check(a.value, p.key) and a.value != p.value
            assert p.doc or p.key.startswith(("emsdp.tlv.tags.", "keys.derivations.")), f"{p.key}: say what it means"
    assert not DEFAULT.param("transport.udp_port").alternatives


def test_the_new_open_points_default_to_what_the_harness_always_did():
    assert DEFAULT["protection.count.align"] == "lsb" and DEFAULT["protection.mac.take"] == "msb"
    for key in ("protection.count.align", "protection.mac.take"):
        assert DEFAULT.param(key).basis == "assumed" and DEFAULT.param(key).doc


def test_an_override_keeps_the_defaults_alternatives_and_cannot_bring_its_own():
    b = load_binding({"protection.count.align": "msb", "emsdp.tlv.tags.rand": 0x21})
    for key in ("protection.count.align", "emsdp.tlv.tags.rand"):
        assert b.param(key).alternatives == DEFAULT.param(key).alternatives
        assert b.param(key).overridden_by == "overrides"
    assert {p.key for p in b.with_alternatives()} == SEARCHED
    with pytest.raises(BindingError, match="only 'value' and optionally 'source'"):
        load_binding({"protection.count.align": {"value": "msb", "alternatives": [{"value": "lsb", "source": "x"}]}})


@pytest.mark.parametrize(
    ("alternatives", "problem"),
    [
        ("msb", "protection.count.align.alternatives: expected a non-empty list"),
        ([], "protection.count.align.alternatives: expected a non-empty list"),
        (["msb"], "protection.count.align.alternatives[0]: expected {value: ..., source: ...}"),
        ([{"value": "msb"}], "protection.count.align.alternatives[0]: expected {value: ..., source: ...}"),
        ([{"value": "msb", "source": " "}], "protection.count.align.alternatives[0].source: say why"),
        ([{"value": "mid", "source": "a reading"}], "protection.count.align.alternatives[0]: expected one of lsb, msb"),
        ([{"value": "lsb", "source": "a reading"}], "alternatives[0]: 'lsb' is the parameter's value"),
        (
            [{"value": "msb", "source": "a reading"}, {"value": "msb", "source": "another"}],
            "protection.count.align.alternatives[1]: 'msb' is listed twice",
        ),
    ],
)
def test_a_bad_alternative_in_the_defaults_is_named_with_its_index(alternatives, problem):
    leaf = {"value": "lsb", "type": "enum[lsb|msb]", "source": "assumed: x", "alternatives": alternatives}
    _, problems = _alternatives("protection.count.align", leaf, parse_type(leaf["type"]))
    assert any(problem in p for p in problems), problems


def test_alternatives_of_the_parameters_type_are_kept_in_order():
    leaf = {
        "value": 7,
        "type": "uint8",
        "source": "assumed: x",
        "alternatives": [
            {"value": 0x21, "source": "NAS"},
            {"value": 6, "source": "seed"},
            {"value": True, "source": "not an int"},
        ],
    }
    found, problems = _alternatives("emsdp.tlv.tags.rand", leaf, parse_type("uint8"))
    assert found == (Alternative(0x21, "NAS"), Alternative(6, "seed"))
    assert problems == ["emsdp.tlv.tags.rand.alternatives[2]: expected uint8 (an integer 0..255), got True (bool)"]


def test_each_alternative_loads_alone_or_with_the_set_its_source_names():
    seed_003 = {"emsdp.tlv.tags.rand": 0x06, "emsdp.tlv.tags.autn": 0x07, "emsdp.tlv.tags.hse_config": 0x08}
    for p in DEFAULT.with_alternatives():
        for a in p.alternatives:
            try:
                assert load_binding({p.key: a.value})[p.key] == a.value
            except BindingError:
                assert seed_003.get(p.key) == a.value and "only as that set" in a.source, (p.key, a.value)
    assert load_binding(seed_003)["emsdp.tlv.tags.hse_config"] == 0x08
