"""SUCI concealment against TS 33.501 Annex C.4, and the SUCI containers against published SUCIs."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.crypto import suci
from tests.kat import check_known_answer, h, load_fixture, one_bit_variants

FIXTURE = load_fixture("suci_ts33501_annex_c4.yaml")
ECIES = FIXTURE["ecies"]
IMSI_VECTORS = [ECIES["profile_a_imsi"], ECIES["profile_b_imsi"]]
ALL_VECTORS = [*IMSI_VECTORS, ECIES["profile_a_nai"], ECIES["profile_b_nai"]]


def _ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["clause"] for v in vectors]


def rejected_as_answer(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Let a rejection count as a changed answer: a bit-flipped point or key may be refused, not recomputed."""

    @functools.wraps(fn)
    def wrapper(**inputs: bytes) -> Any:
        try:
            return fn(**inputs)
        except suci.SuciError as exc:
            return exc

    return wrapper


# --- Published ECIES vectors (C.4.3, C.4.4) -------------------------------------------------------------


@pytest.mark.parametrize("vector", ALL_VECTORS, ids=_ids(ALL_VECTORS))
def test_public_keys_match_published_key_pairs(vector: dict[str, Any]) -> None:
    fn = functools.partial(suci.public_key, profile=vector["profile"])
    check_known_answer(fn, {"private_key": h(vector["eph_private_key"])}, h(vector["eph_public_key"]))
    check_known_answer(fn, {"private_key": h(vector["hn_private_key"])}, h(vector["hn_public_key"]))


@pytest.mark.parametrize("vector", ALL_VECTORS, ids=_ids(ALL_VECTORS))
def test_key_agreement_gives_published_shared_key_on_both_sides(vector: dict[str, Any]) -> None:
    fn = rejected_as_answer(functools.partial(suci.key_agreement, profile=vector["profile"]))
    expected = h(vector["eph_shared_key"])
    ue_side = {"private_key": h(vector["eph_private_key"]), "peer_public_key": h(vector["hn_public_key"])}
    hn_side = {"private_key": h(vector["hn_private_key"]), "peer_public_key": h(vector["eph_public_key"])}
    check_known_answer(fn, ue_side, expected)
    check_known_answer(fn, hn_side, expected)


@pytest.mark.parametrize("vector", ALL_VECTORS, ids=_ids(ALL_VECTORS))
def test_kdf_with_ephemeral_key_as_shared_info_gives_published_keys(vector: dict[str, Any]) -> None:
    """SharedInfo1 is the ephemeral public key exactly as sent (32 octets for A, 33 compressed for B)."""
    inputs = {"shared_key": h(vector["eph_shared_key"]), "ephemeral_public_key": h(vector["eph_public_key"])}
    if "icb" in vector:
        expected = suci.EciesKeys(h(vector["eph_enc_key"]), h(vector["icb"]), h(vector["eph_mac_key"]))
        check_known_answer(suci.derive_keys, inputs, expected)
    else:  # C.4.3.2 and C.4.4.2 publish no ICB

        def enc_and_mac_keys(**kw: bytes) -> tuple[bytes, bytes]:
            keys = suci.derive_keys(**kw)
            return keys.enc_key, keys.mac_key

        check_known_answer(enc_and_mac_keys, inputs, (h(vector["eph_enc_key"]), h(vector["eph_mac_key"])))


@pytest.mark.parametrize("vector", IMSI_VECTORS, ids=_ids(IMSI_VECTORS))
def test_conceal_reproduces_published_scheme_output(vector: dict[str, Any]) -> None:
    fn = rejected_as_answer(functools.partial(suci.conceal, profile=vector["profile"]))
    inputs = {
        "msin_or_plaintext": h(vector["plaintext"]),
        "hn_public_key": h(vector["hn_public_key"]),
        "ephemeral_private_key": h(vector["eph_private_key"]),
    }
    check_known_answer(fn, inputs, h(vector["scheme_output"]))


def test_conceal_profile_b_accepts_published_uncompressed_hn_key() -> None:
    vector = ECIES["profile_b_imsi"]
    out = suci.conceal(
        h(vector["plaintext"]),
        h(vector["hn_public_key_uncompressed"]),
        "B",
        ephemeral_private_key=h(vector["eph_private_key"]),
    )
    assert out == h(vector["scheme_output"])


@pytest.mark.parametrize("vector", ALL_VECTORS, ids=_ids(ALL_VECTORS))
def test_conceal_parts_match_published_ciphertext_and_mac_tag(vector: dict[str, Any]) -> None:
    out = suci.conceal(
        h(vector["plaintext"]),
        h(vector["hn_public_key"]),
        vector["profile"],
        ephemeral_private_key=h(vector["eph_private_key"]),
    )
    expected = suci.SchemeOutput(h(vector["eph_public_key"]), h(vector["ciphertext"]), h(vector["mac_tag"]))
    assert suci.SchemeOutput.from_bytes(out, vector["profile"]) == expected


@pytest.mark.parametrize("vector", ALL_VECTORS, ids=_ids(ALL_VECTORS))
def test_deconceal_recovers_published_plaintext(vector: dict[str, Any]) -> None:
    fn = rejected_as_answer(functools.partial(suci.deconceal, profile=vector["profile"]))
    scheme_output = h(vector["eph_public_key"]) + h(vector["ciphertext"]) + h(vector["mac_tag"])
    if "scheme_output" in vector:
        assert scheme_output == h(vector["scheme_output"])
    inputs = {"scheme_output": scheme_output, "hn_private_key": h(vector["hn_private_key"])}
    check_known_answer(fn, inputs, h(vector["plaintext"]))


# --- Rejection ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", IMSI_VECTORS, ids=_ids(IMSI_VECTORS))
@pytest.mark.parametrize("part", ["mac_tag", "ciphertext"])
def test_deconceal_rejects_a_flipped_bit(vector: dict[str, Any], part: str) -> None:
    out = suci.SchemeOutput.from_bytes(h(vector["scheme_output"]), vector["profile"])
    for variant in one_bit_variants(getattr(out, part)):
        corrupted = dataclasses.replace(out, **{part: variant}).to_bytes()
        with pytest.raises(suci.SuciError, match="MAC"):
            suci.deconceal(corrupted, h(vector["hn_private_key"]), vector["profile"])


@pytest.mark.parametrize("vector", IMSI_VECTORS, ids=_ids(IMSI_VECTORS))
@pytest.mark.parametrize("cut", [1, -1])
def test_deconceal_rejects_wrong_length(vector: dict[str, Any], cut: int) -> None:
    out = h(vector["scheme_output"])
    pub_len = len(h(vector["eph_public_key"]))
    # one octet short of the minimum, or an extra octet (which shifts the MAC tag)
    malformed = out[: pub_len + suci.MAC_TAG_LEN] if cut == 1 else out + b"\x00"
    with pytest.raises(suci.SuciError):
        suci.deconceal(malformed, h(vector["hn_private_key"]), vector["profile"])


@pytest.mark.parametrize("case", FIXTURE["reject"])
def test_deconceal_rejects_published_invalid_point(case: dict[str, Any]) -> None:
    with pytest.raises(suci.SuciError):
        suci.deconceal(h(case["scheme_output"]), h(case["hn_private_key"]), case["profile"])


def test_deconceal_profile_b_rejects_uncompressed_ephemeral_key() -> None:
    """C.3.4.2 mandates point compression; the spec's own uncompressed form of the key is not a scheme output."""
    vector = ECIES["profile_b_imsi"]
    out = h(vector["eph_public_key_uncompressed"]) + h(vector["ciphertext"]) + h(vector["mac_tag"])
    with pytest.raises(suci.SuciError, match="compressed"):
        suci.deconceal(out, h(vector["hn_private_key"]), "B")


def test_deconceal_rejects_low_order_x25519_point() -> None:
    vector = ECIES["profile_a_imsi"]
    out = bytes(32) + h(vector["ciphertext"]) + h(vector["mac_tag"])
    with pytest.raises(suci.SuciError):
        suci.deconceal(out, h(vector["hn_private_key"]), "A")


@pytest.mark.parametrize("profile", ["C", "a", ""])
def test_unknown_profile_is_a_suci_error(profile: str) -> None:
    with pytest.raises(suci.SuciError, match="profile"):
        suci.conceal(b"\x01", bytes(32), profile)


def test_aes_ctr_counter_wraps_in_32_bits() -> None:
    """C.3.4.0: the counter increments modulo 2^32 in the low 32 bits, never carrying into the upper 96."""
    key, prefix = bytes(range(16)), bytes(range(12))
    across_wrap = suci._aes_ctr(key, prefix + b"\xff" * 4, bytes(32))
    assert across_wrap[16:] == suci._aes_ctr(key, prefix + bytes(4), bytes(16))


# --- MSIN as BCD (C.3.1, C.4.2.1) -----------------------------------------------------------------------


def test_msin_bcd_matches_published_scheme_input() -> None:
    vector = FIXTURE["null_scheme_imsi"]

    def encode(msin: bytes) -> Any:  # bytes only so that check_known_answer can flip its bits
        return rejected_as_answer(suci.encode_msin)(msin=msin.decode("latin-1"))

    check_known_answer(encode, {"msin": vector["msin"].encode()}, h(vector["scheme_input"]))
    check_known_answer(rejected_as_answer(suci.decode_msin), {"bcd": h(vector["scheme_input"])}, vector["msin"])
    assert h(vector["scheme_output"]) == h(vector["scheme_input"])  # the null scheme is the identity


@pytest.mark.parametrize("bad", ["", "12a", "١٢٣", "12 3"])
def test_encode_msin_rejects_non_digits(bad: str) -> None:
    with pytest.raises(suci.SuciError):
        suci.encode_msin(bad)


@pytest.mark.parametrize("bad", ["", "ff", "1f", "f012", "0f1f", "a1"])
def test_decode_msin_rejects_misplaced_filler_and_non_digits(bad: str) -> None:
    with pytest.raises(suci.SuciError):
        suci.decode_msin(bytes.fromhex(bad))


# --- SUCI containers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", FIXTURE["suci_strings"], ids=lambda c: c["suci"][:24])
def test_published_suci_strings_parse_deconceal_and_rebuild(case: dict[str, Any]) -> None:
    parsed = suci.parse_suci(case["suci"], "string")
    assert (parsed.mcc, parsed.mnc) == (case["mcc"], case["mnc"])
    assert case["supi"] == f"imsi-{case['mcc']}{case['mnc']}{case['msin']}"
    if parsed.scheme_id == suci.NULL_SCHEME:
        scheme_input = parsed.scheme_output
    else:
        profile = suci.PROFILES[parsed.scheme_id]
        scheme_input = suci.deconceal(parsed.scheme_output, h(case["hn_private_key"]), profile)
    assert suci.decode_msin(scheme_input) == case["msin"]
    assert suci.build_suci(parsed, "string") == case["suci"]


def test_published_suci_string_scheme_outputs_are_annex_c4_outputs() -> None:
    a, b, _ = (suci.parse_suci(c["suci"], "string") for c in FIXTURE["suci_strings"])
    assert a.scheme_output == h(ECIES["profile_a_imsi"]["scheme_output"])
    assert b.scheme_output == h(ECIES["profile_b_imsi"]["scheme_output"])


@pytest.mark.parametrize("case", FIXTURE["suci_nas"], ids=lambda c: c["supi"])
def test_published_nas_suci_parses_and_rebuilds(case: dict[str, Any]) -> None:
    octets = h(case["octets"])
    parsed = suci.parse_suci(octets, "nas")
    assert parsed == suci.Suci(
        supi_type=suci.SUPI_TYPE_IMSI,
        mcc=case["mcc"],
        mnc=case["mnc"],
        routing_indicator=case["routing_indicator"],
        scheme_id=case["scheme_id"],
        hn_key_id=case["hn_key_id"],
        scheme_output=octets[8:],
    )
    assert case["supi"] == f"imsi-{case['mcc']}{case['mnc']}{case['msin']}"
    assert suci.decode_msin(parsed.scheme_output) == case["msin"]
    assert suci.build_suci(parsed, "nas") == octets


@pytest.mark.parametrize(
    "bad",
    [
        "suci-0-208-93-0-1-1-abc",  # odd number of hex digits
        "suci-1-208-93-0-1-1-00",  # SUPI type other than IMSI
        "suci-0-208-93-12345-0-0-1",  # routing indicator longer than 4 digits
        "suci-0-208-93-0-0-1-1234",  # null scheme with a key id
        "suci-0-208-93-0-1-1-00 11",  # whitespace that bytes.fromhex would accept
        "suci-0-208-93-0-1-256-" + "00" * 41,  # key id beyond an octet
        "suci-0-208-93-0-1-1-00",  # too short for profile A
    ],
)
def test_malformed_suci_strings_are_rejected(bad: str) -> None:
    with pytest.raises(suci.SuciError):
        suci.parse_suci(bad, "string")


def test_unknown_format_is_rejected() -> None:
    with pytest.raises(suci.SuciError, match="format"):
        suci.parse_suci(b"\x01", "json")  # type: ignore[arg-type]


# --- Properties -----------------------------------------------------------------------------------------

digits = st.text(alphabet="0123456789", min_size=1, max_size=15)
profiles = st.sampled_from(["A", "B"])


@given(msin=digits, profile=profiles)
def test_conceal_deconceal_round_trip(msin: str, profile: str) -> None:
    hn_private = suci.generate_private_key(profile)
    scheme_input = suci.encode_msin(msin)
    scheme_output = suci.conceal(scheme_input, suci.public_key(hn_private, profile), profile)
    assert suci.decode_msin(suci.deconceal(scheme_output, hn_private, profile)) == msin


def _scheme(scheme_id: int) -> st.SearchStrategy[tuple[int, int, bytes]]:
    key_ids = st.integers(0, 255)
    if scheme_id == suci.NULL_SCHEME:
        return digits.map(lambda m: (scheme_id, 0, suci.encode_msin(m)))
    if scheme_id == suci.PROFILE_A:
        outputs = st.binary(min_size=32 + suci.MAC_TAG_LEN + 1, max_size=64)
    elif scheme_id == suci.PROFILE_B:
        outputs = st.tuples(st.sampled_from([b"\x02", b"\x03"]), st.binary(min_size=41, max_size=64)).map(b"".join)
    else:
        outputs = st.binary(min_size=1, max_size=64)
    return st.tuples(st.just(scheme_id), key_ids, outputs)


sucis = st.builds(
    lambda mcc, mnc, ri, scheme: suci.Suci(suci.SUPI_TYPE_IMSI, mcc, mnc, ri, *scheme),
    st.text("0123456789", min_size=3, max_size=3),
    st.text("0123456789", min_size=2, max_size=3),
    st.text("0123456789", min_size=1, max_size=4),
    st.integers(0, 15).flatmap(_scheme),
)


@given(value=sucis, format=st.sampled_from(["nas", "string"]))
def test_suci_build_parse_round_trip(value: suci.Suci, format: suci.SuciFormat) -> None:
    assert suci.parse_suci(suci.build_suci(value, format), format) == value


@given(data=st.binary(max_size=64))
def test_parsing_arbitrary_octets_succeeds_or_raises_suci_error(data: bytes) -> None:
    with contextlib.suppress(suci.SuciError):
        suci.parse_suci(data, "nas")


@given(text=st.one_of(st.text(max_size=80), st.from_regex(r"suci-[0-9]-[0-9]{3}-[0-9]{2,3}-.*", fullmatch=True)))
def test_parsing_arbitrary_strings_succeeds_or_raises_suci_error(text: str) -> None:
    with contextlib.suppress(suci.SuciError):
        suci.parse_suci(text, "string")


@given(data=st.binary(max_size=80), profile=profiles)
def test_deconceal_of_arbitrary_octets_raises_only_suci_error(data: bytes, profile: str) -> None:
    with pytest.raises(suci.SuciError):
        suci.deconceal(data, suci.generate_private_key(profile), profile)
