"""The EMSDP codec: known answers, round-trip properties, and malformed input flagged rather than raised."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP

from conformance.binding import load_binding
from conformance.crypto.suci import Suci, build_suci
from conformance.emsdp import Codec
from conformance.emsdp.fast import FastCodec
from conformance.emsdp.layers import EmsdpPacket
from conformance.emsdp.values import (
    decode_hse_config,
    decode_imsi,
    decode_ue_config,
    encode_hse_config,
    encode_imsi,
    encode_ue_config,
)
from tests.kat import check_known_answer

CODEC = Codec()
LAYOUT = CODEC.layout


# ---- known answers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("imsi", "tlv"),
    [("001010123456789", "01 08 09 10 10 10 32 54 76 98"), ("00101012345678", "01 08 01 10 10 10 32 54 76 F8")],
)
def test_imsi_tlv_worked_examples_of_the_digest(imsi, tlv):
    """Digest 4.3 (EF_IMSI coding of TS 31.102 4.2.2), both worked examples, byte for byte."""
    expected = bytes.fromhex(tlv.replace(" ", ""))
    assert bytes(CODEC.tlv("imsi", encode_imsi(imsi))) == expected
    assert decode_imsi(expected[2:]) == imsi
    message = CODEC.decode(bytes(CODEC.cp("session_request", [("imsi", encode_imsi(imsi))])))
    assert CODEC.describe(message)["tlvs"][0]["decoded"] == imsi
    check_known_answer(lambda value: decode_imsi(value), {"value": expected[2:]}, imsi)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0a10101032547698", "not IMSI"),
        ("0110101032547698", "parity bit says even, 15 digits"),
        ("0110101032f476f8", "after the 'F'"),
        ("09101010325476", "8 octets"),
        ("09a0101032547698", "not a digit"),
    ],
)
def test_bad_imsi_values_say_what_is_wrong(value, message):
    with pytest.raises(ValueError, match=message):
        decode_imsi(bytes.fromhex(value))


def test_header_layout_follows_the_binding():
    """Octet 0 = UP/CP, RFU, Key ID (TS 33.163 6.2.2) then counter MSBs, as the default binding says."""
    raw = bytes(CODEC.cp("session_request", key_id=5, counter=0x7FF, session_id=0xABCD))
    assert raw[:5] == bytes([0b0_0_101_111, 0xFF, 0xAB, 0xCD, 0x10])
    raw = bytes(CODEC.up(b"x", key_id=1, counter=1, session_id=2, mac=bytes(LAYOUT.mac_bytes)))
    assert raw[0] >> 7 == 1 and len(raw) == 4 + 1 + LAYOUT.mac_bytes


def test_an_override_changes_the_wire_without_code_changes():
    codec = Codec(load_binding({"emsdp.tlv.tags.suci": 0x22, "emsdp.header.session_id_bits": 8}))
    raw = bytes(codec.cp("session_request", [("suci", b"\x01\x02")], session_id=9))
    assert raw == bytes([0x00, 0x00, 9, 0x10, 0x22, 0x02, 0x01, 0x02])
    assert codec.describe(codec.decode(raw))["tlvs"][0]["name"] == "suci"


def test_suci_tlv_carries_the_crypto_core_suci():
    suci = Suci(0, "001", "01", "0", 0, 0, bytes.fromhex("21436587"))
    message = CODEC.decode(bytes(CODEC.cp("session_request", [("suci", build_suci(suci, "nas"))])))
    assert CODEC.describe(message)["tlvs"][0]["decoded"] == "suci-0-001-01-0-0-0-12345678"


def test_config_values_round_trip():
    ue = encode_ue_config(LAYOUT, 17, ["umts", "5g_aka"], True)
    assert decode_ue_config(LAYOUT, ue) == {
        "release": 17,
        "key_agreements": ["umts", "5g_aka"],
        "confidentiality_requested": True,
    }
    hse = encode_hse_config(LAYOUT, service="up_confidential", mode="ue_to_eas", counter_scheme=3, mac_bits=64)
    decoded = decode_hse_config(LAYOUT, hse)
    assert (decoded["service"], decoded["mode"], decoded["counter_scheme"]) == ("up_confidential", "ue_to_eas", 3)


# ---- properties ---------------------------------------------------------------------------------------


def _value(draw, name):
    size = LAYOUT.value_size(name)
    low, high = size if size else (0, 40)
    return draw(st.binary(min_size=low, max_size=high))


@st.composite
def messages(draw, codec=CODEC):
    """Any message the layers can build: every command and TLV of the binding, any header values."""
    layout = codec.layout
    scheme = draw(st.sampled_from(layout.schemes))
    plane = draw(st.sampled_from(["cp", "up"]))
    header = {
        name: draw(st.integers(0, 2**bits - 1))
        for name, bits in layout.header(plane, scheme)
        if name not in ("up_cp", "version")
    }
    if layout.mac_present(header["key_id"]):
        header["mac"] = draw(st.binary(min_size=layout.mac_bytes, max_size=layout.mac_bytes))
    if plane == "up":
        return codec.up(draw(st.binary(max_size=200)), scheme=scheme, **header), scheme
    names = draw(st.lists(st.sampled_from(sorted(layout.tags)), max_size=6))
    tlvs = [(name, _value(draw, name)) for name in names]
    command = draw(st.sampled_from(sorted(layout.commands)))
    return codec.cp(command, tlvs, scheme=scheme, **header), scheme


def roundtrip_mismatches(codec: Codec, message, scheme: int) -> list[str]:
    """Everything that differs between a built message and the same bytes dissected back."""
    raw = bytes(message)
    back = codec.decode(raw, scheme)
    found = [f"problems on a well-formed message: {back.problems}"] if back.problems else []
    if bytes(back) != raw:
        found.append(f"rebuild differs: {raw.hex()} -> {bytes(back).hex()}")
    names = [n for n, _ in codec.layout.header(message.plane, scheme)] + ["mac"]
    names += ["cmd"] if message.plane == "cp" else ["data"]
    for name in names:
        if name == "mac" and not codec.layout.mac_present(message.key_id):
            continue
        if message.getfieldval(name) != back.getfieldval(name):
            found.append(f"{name}: built {message.getfieldval(name)!r}, dissected {back.getfieldval(name)!r}")
    if message.plane == "cp":
        built = [(t.tag, t.value) for t in message.tlvs]
        read = [(getattr(t, "tag", None), getattr(t, "value", None)) for t in back.tlvs]
        if built != read:
            found.append(f"tlvs: built {built}, dissected {read}")
    return found


@given(messages())
def test_every_buildable_message_dissects_back_equal_and_rebuilds_identically(built):
    message, scheme = built
    assert roundtrip_mismatches(CODEC, message, scheme) == []


@given(st.binary(max_size=1500), st.sampled_from(list(LAYOUT.schemes)))
def test_arbitrary_bytes_dissect_without_raising(data, scheme):
    packet = CODEC.decode(data, scheme)
    assert bytes(packet) == data
    view = CODEC.describe(packet)
    assert isinstance(view["problems"], list)


@given(st.binary(max_size=1500))
def test_arbitrary_bytes_under_udp_dissect_without_raising(data):
    CODEC.layers.bind_udp()
    for sport, dport in ((40000, LAYOUT.udp_port), (LAYOUT.udp_port, 40000)):  # bound in both directions
        frame = IP(bytes(IP(src="127.0.0.1", dst="127.0.0.1") / UDP(sport=sport, dport=dport) / data))
        assert bytes(frame[UDP].payload) == data
        if data:
            assert isinstance(frame[UDP].payload, EmsdpPacket), frame[UDP].payload


@given(messages(), st.integers(1, 40))
def test_cut_messages_are_flagged(built, cut):
    """A message cut short inside its TLVs, data or MAC never passes as well-formed."""
    message, scheme = built
    if message.plane == "up":
        return  # UP data has no length of its own: a shorter datagram is a different, well-formed message
    raw = bytes(message)
    boundaries, offset = {0}, 0  # where a TLV list may end
    for tlv in message.tlvs:
        offset += LAYOUT.tag_bytes + LAYOUT.length_bytes + len(tlv.value)
        boundaries.add(offset)
    if offset - cut in boundaries:
        return  # whole TLVs removed: well-formed; a missing mandatory TLV is a protocol check, not a codec one
    packet = CODEC.decode(raw[:-cut], scheme)
    assert packet.problems, f"{raw[:-cut].hex()} passed as well-formed"


def test_overlong_and_short_values_and_unknowns_are_flagged():
    cases = {
        "over-long TLV rand: 17 octets, expected 16": [("rand", bytes(17))],
        "short TLV imsi: 7 octets, expected 8": [("imsi", bytes(7))],
        "over-long TLV res: 17 octets, expected 4..16": [("res", bytes(17))],
    }
    for problem, tlvs in cases.items():
        assert problem in CODEC.decode(bytes(CODEC.cp("session_start", tlvs))).problems
    unknown = bytes(CODEC.cp(0x7E, [CODEC.layers.tlv(tag=0xEE, value=b"zz")]))
    assert CODEC.decode(unknown).problems == ["unknown command 0x7e", "unknown tag 0xee"]
    assert (
        "truncated TLV rand: length says 16, 3 octet(s) present"
        in CODEC.decode(bytes(CODEC.cp("session_start", [("rand", bytes(16))]))[:-13]).problems
    )
    assert "empty datagram" in CODEC.decode(b"").problems
    assert CODEC.decode(b"\x00\x01").problems == ["truncated message: 2 octet(s), the cp header needs 5"]


def test_a_deliberately_broken_codec_fails_the_round_trip_property():
    """The property is not vacuous: a codec whose TLVs claim one octet more than their value is caught."""

    class BrokenFast(FastCodec):
        def tlv(self, tag, value, length=None):
            return super().tlv(tag, value, len(value) + 1 if length is None else length)

    broken = Codec()
    broken.fast = BrokenFast(broken.layout)
    message = broken.cp("session_request", [("imsi", encode_imsi("001010123456789")), ("enterprise_setup", b"e")])
    assert roundtrip_mismatches(broken, message, LAYOUT.default_scheme)
