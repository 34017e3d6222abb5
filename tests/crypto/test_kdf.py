"""The TS 33.220 KDF: input encoding, truncation, and the TS 33.401 KASME known answer."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.binding import load_binding
from conformance.crypto.kdf import kdf, kdf_input, truncate
from conformance.crypto.keys import KeyHierarchy
from tests.kat import check_known_answer, h, load_fixture

KASME = load_fixture("kdf_ts33220.yaml")["kasme"]
KHSE = load_fixture("khse_selfcomputed.yaml")


def test_kasme_known_answer_with_the_spec_fc():
    def fn(ck, ik, sn_id, sqn_xor_ak):
        return kdf(ck + ik, KASME["fc"], sn_id, sqn_xor_ak)

    inputs = {name: h(KASME[name]) for name in ("ck", "ik", "sn_id", "sqn_xor_ak")}
    check_known_answer(fn, inputs, h(KASME["kasme"]))


def test_kasme_known_answer_through_the_binding():
    """The hierarchy evaluator, reading FC and inputs from the default binding, gives the published KASME."""
    hierarchy = KeyHierarchy.from_binding(load_binding())

    def fn(ck, ik, sn_id, sqn_xor_ak):
        derived, _ = hierarchy.derive_all(
            ck=ck, ik=ik, key_agreement="eps", inputs={"sn_id": sn_id, "sqn_xor_ak": sqn_xor_ak}
        )
        return derived["kasme"].value

    inputs = {name: h(KASME[name]) for name in ("ck", "ik", "sn_id", "sqn_xor_ak")}
    check_known_answer(fn, inputs, h(KASME["kasme"]))


def test_sqn_xor_ak_of_the_kasme_vector():
    sqn, ak = h(KASME["sqn"]), h(KASME["ak"])
    assert bytes(a ^ b for a, b in zip(sqn, ak, strict=True)) == h(KASME["sqn_xor_ak"])


def test_input_string_of_khse_matches_the_digest():
    """S = FC ‖ P0 ‖ L0 ‖ P1 ‖ L1 with two-octet big-endian lengths (digest 5.5)."""
    i = KHSE["inputs"]
    check_known_answer(
        lambda snn, sqn_xor_ak: kdf_input(0x63, snn, sqn_xor_ak),
        {"snn": i["snn"].encode(), "sqn_xor_ak": h(i["sqn_xor_ak"])},
        h(KHSE["s_0x63"]),
    )


@given(st.lists(st.binary(max_size=300), max_size=5), st.integers(0, 255))
def test_input_string_is_unambiguous(params, fc):
    """Every parameter is followed by its own length, so S can be parsed back into FC and P0..Pn."""
    s = kdf_input(fc, *params)
    assert s[0] == fc
    rest, parsed = s[1:], []
    for p in params:  # walk forwards using the known lengths, check each recorded length
        assert rest[: len(p)] == p
        assert int.from_bytes(rest[len(p) : len(p) + 2], "big") == len(p)
        rest = rest[len(p) + 2 :]
        parsed.append(p)
    assert rest == b"" and parsed == params


def test_overlong_parameter_is_refused():
    with pytest.raises(ValueError, match="P1 is 65536 octets"):
        kdf_input(0x10, b"x", bytes(65536))


def test_fc_must_be_one_octet():
    with pytest.raises(ValueError, match="one octet"):
        kdf_input(0x100)


def test_truncate_keeps_the_named_end():
    out = bytes(range(32))
    assert truncate(out, 128, "lsb") == bytes(range(16, 32))
    assert truncate(out, 128, "msb") == bytes(range(16))
    assert truncate(out, 256, "msb") == out
    for bad_bits, take in ((127, "lsb"), (0, "lsb"), (264, "msb"), (128, "middle")):
        with pytest.raises(ValueError):
            truncate(out, bad_bits, take)


@pytest.mark.parametrize("case", load_fixture("kdf_ts33220.yaml")["ck_ik_prime"], ids=lambda c: f"case{c['case']}")
def test_ck_ik_prime_known_answers_through_the_binding(case):
    """RFC 5448 / RFC 9048 vectors for CK'‖IK' (FC 0x20), through the binding's ck_ik_prime derivation."""
    hierarchy = KeyHierarchy.from_binding(load_binding())

    def fn(ck, ik, snn, sqn_xor_ak):
        derived, _ = hierarchy.derive_all(
            ck=ck, ik=ik, key_agreement="eap_aka_prime", inputs={"snn": snn, "sqn_xor_ak": sqn_xor_ak}
        )
        return derived["ck_ik_prime"].value

    inputs = {
        "ck": h(case["ck"]),
        "ik": h(case["ik"]),
        "snn": case["network_name"].encode(),
        "sqn_xor_ak": h(case["sqn_xor_ak"]),
    }
    check_known_answer(fn, inputs, h(case["ck_prime"]) + h(case["ik_prime"]))
