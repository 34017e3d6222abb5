"""The fast codec (conformance/emsdp/fast.py) agrees with the scapy layers octet for octet and field for field.

Over four bindings (the default; the override test_codec.py uses; the reshaped binding test_wireshark.py gives
tshark; and one that moves the Session ID to the front, drops the RFU bit, gives each plane its own counter
widths and always carries a 32-bit MAC): (a) every message either can build, built by both, is the same
octets; (b) any octets, and mutations of built messages read under any counter scheme, decode to the same
plane, header, command, TLVs, data, MAC and problems.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.config import conf
from scapy.fields import MaximumItemsCount

from conformance.binding import load_binding
from conformance.emsdp import Codec, Layout
from conformance.emsdp import fast as fast_module
from conformance.emsdp.fast import FastCodec, Message
from conformance.emsdp.layers import EmsdpPacket

BINDINGS: dict[str, dict[str, Any]] = {
    "default": {},
    "override": {"emsdp.tlv.tags.suci": 0x22, "emsdp.header.session_id_bits": 8},
    "reshaped": {
        "transport.udp_port": 4000,
        "emsdp.tlv.tags.suci": 0x22,
        "emsdp.header.fields": ["version", "up_cp", "rfu", "key_id", "counter", "session_id"],
        "emsdp.header.version_bits": 4,
        "emsdp.counters.cp_bits_by_scheme": [7, 15, 23, 39],
        "emsdp.counters.up_bits_by_scheme": [7, 15, 23, 39],
        "emsdp.tlv.tag_bytes": 2,
        "emsdp.tlv.length_bytes": 2,
        "emsdp.serving_network.encoding": "plmn_id",
        "emsdp.ue_config.release_octet": False,
    },
    "shuffled": {
        "emsdp.header.fields": ["session_id", "key_id", "rfu", "up_cp", "counter"],
        "emsdp.header.rfu_bits": 0,
        "emsdp.header.session_id_bits": 24,
        "emsdp.counters.cp_bits_by_scheme": [4, 12, 20, 36],
        "emsdp.counters.up_bits_by_scheme": [12, 4, 36, 20],
        "emsdp.counters.default_scheme": 2,
        "emsdp.tlv.length_bytes": 2,
        "protection.mac.bits": 32,
        "protection.mac.absent_when_key_id_zero": False,
    },
}
CODECS = {name: (Codec(load_binding(o)), FastCodec(load_binding(o))) for name, o in BINDINGS.items()}

EXAMPLES = 300  # per binding and property: the file runs in about 10 s on two cores


# ---- what both codecs are asked to build ------------------------------------------------------------------


class Spec(NamedTuple):
    plane: str
    scheme: int
    header: dict[str, Any]
    command: str | int | None
    tlvs: list[tuple[str | int, bytes, int | None]]  # (name or tag, value, length stated or None)
    data: bytes


def _length_max(layout: Layout) -> int:
    return (1 << 8 * layout.length_bytes) - 1


def _value(draw: st.DrawFn, layout: Layout, name: str | None) -> bytes:
    """A value of about the right size for a known TLV (sometimes one octet off), any size otherwise."""
    size = layout.value_size(name) if name else None
    if size:
        octets = draw(st.integers(max(0, size[0] - 1), size[1] + 1))
    else:
        octets = draw(st.one_of(st.integers(0, 40), st.integers(0, min(300, _length_max(layout)))))
    return draw(st.binary(min_size=octets, max_size=octets))


@st.composite
def specs(draw: st.DrawFn, layout: Layout) -> Spec:
    """Any message the codecs can build: both planes, every counter scheme, any header values within their
    widths (or left to their defaults), every command and unknown codes, TLVs by name or by raw tag (unknown
    ones too), some stating a length that is not their value's."""
    plane = draw(st.sampled_from(["cp", "up"]))
    scheme = draw(st.sampled_from(list(layout.schemes)))
    header: dict[str, Any] = {}
    for name, bits in layout.header(plane, scheme):
        if (name != "up_cp" or plane == "cp") and draw(st.integers(0, 3)):  # a quarter left to the default
            header[name] = draw(st.integers(0, (1 << bits) - 1))
    if layout.mac_present(header.get("key_id", 0)) and draw(st.integers(0, 3)):
        header["mac"] = draw(st.binary(min_size=layout.mac_bytes, max_size=layout.mac_bytes))
    if plane == "up":
        return Spec(plane, scheme, header, None, [], draw(st.binary(max_size=200)))
    command = draw(st.one_of(st.sampled_from(sorted(layout.commands)), st.integers(0, 255)))
    tlvs = []
    for _ in range(draw(st.integers(0, 6))):
        key = draw(st.one_of(st.sampled_from(sorted(layout.tags)), st.integers(0, (1 << 8 * layout.tag_bytes) - 1)))
        value = _value(draw, layout, key if isinstance(key, str) else None)
        length = draw(
            st.sampled_from([None, None, None, len(value) - 1, len(value) + 1, "any"]).flatmap(
                lambda c: st.integers(0, _length_max(layout)) if c == "any" else st.just(c)
            )
        )
        tlvs.append((key, value, length if length is None or 0 <= length <= _length_max(layout) else None))
    return Spec(plane, scheme, header, command, tlvs, b"")


def scapy_cp(codec: Codec, command: str | int, tlvs: list[Any], *, scheme: int | None = None, **header: Any):
    """A CP message built by the scapy layers (Codec itself builds with the fast codec): TLVs as (name, value)
    pairs or TLV layers."""
    layers, layout = codec.layers, codec.layout
    items = [t if isinstance(t, EmsdpPacket) else layers.tlv(tag=layout.tags[t[0]], value=t[1]) for t in tlvs]
    code = layout.commands[command] if isinstance(command, str) else command
    return layers.cp(layout.default_scheme if scheme is None else scheme)(cmd=code, tlvs=items, **header)


def scapy_up(codec: Codec, data: bytes, *, scheme: int | None = None, **header: Any):
    return codec.layers.up(codec.layout.default_scheme if scheme is None else scheme)(up_cp=1, data=data, **header)


def build_scapy(codec: Codec, spec: Spec) -> bytes:
    if spec.plane == "up":
        return bytes(scapy_up(codec, spec.data, scheme=spec.scheme, **spec.header))
    items: list[Any] = []
    for key, value, length in spec.tlvs:
        if isinstance(key, str) and length is None:
            items.append((key, value))  # by name
        else:
            tag = codec.layout.tags[key] if isinstance(key, str) else key
            items.append(codec.layers.tlv(tag=tag, value=value, **({} if length is None else {"length": length})))
    return bytes(scapy_cp(codec, spec.command, items, scheme=spec.scheme, **spec.header))


def build_fast(fast: FastCodec, spec: Spec) -> bytes:
    if spec.plane == "up":
        return fast.up(spec.data, scheme=spec.scheme, **spec.header)
    tlvs = [(key, value) if length is None else (key, value, length) for key, value, length in spec.tlvs]
    return fast.cp(spec.command, tlvs, scheme=spec.scheme, **spec.header)


# ---- what both codecs read ---------------------------------------------------------------------------------


def scapy_fields(codec: Codec, packet: EmsdpPacket) -> dict[str, Any]:
    """A dissected packet as the fields a `fast.Message` has."""
    layout = codec.layout
    if isinstance(packet, codec.layers.truncated):
        header: dict[str, int] = {}
        view = {"plane": None, "command": None, "tlvs": [], "data": packet.data, "mac": None}
    else:
        header = {name: packet.getfieldval(name) for name, _ in layout.header(packet.plane, packet.scheme)}
        tlvs = [
            (t.tag, t.tag_name, t.length, t.value) if isinstance(t, EmsdpPacket) else ("undecodable", bytes(t))
            for t in getattr(packet, "tlvs", [])
        ]
        view = {
            "plane": packet.plane,
            "command": packet.cmd if packet.plane == "cp" else None,
            "tlvs": tlvs,
            "data": packet.data if packet.plane == "up" else None,
            "mac": packet.mac if layout.mac_present(packet.key_id) else None,
        }
    view["command_name"] = layout.command_names().get(view["command"])
    return {**view, "scheme": packet.scheme, "header": header, "problems": list(packet.problems)}


def fast_fields(message: Message) -> dict[str, Any]:
    return {
        "plane": message.plane,
        "command": message.command,
        "tlvs": [tuple(t) for t in message.tlvs],
        "data": message.data,
        "mac": message.mac,
        "command_name": message.command_name,
        "scheme": message.scheme,
        "header": message.header,
        "problems": message.problems,
    }


def assert_decode_alike(codec: Codec, fast: FastCodec, data: bytes, scheme: int | None = None) -> Message:
    message = fast.decode(data, scheme)
    assert bytes(message) == data
    try:
        packet = codec.dissect(data, scheme)
    except MaximumItemsCount:  # scapy's own failure, see test_more_than_a_hundred_tlvs_decode_alike
        assert len(message.tlvs) > conf.max_list_count
        return message
    assert fast_fields(message) == scapy_fields(codec, packet), data.hex()
    return message


@st.composite
def received(draw: st.DrawFn, fast: FastCodec) -> tuple[bytes, int]:
    """A built message, mutated (cut short, bits flipped, a TLV length off by one, octets added, inserted or
    removed, or kept), and the counter scheme to read it with (mostly its own)."""
    layout = fast.layout
    spec = draw(specs(layout))
    raw = bytearray(build_fast(fast, spec))
    lengths, at = [], layout.header_bytes(spec.plane, spec.scheme) + 1  # where each TLV's length field is
    for _, value, _ in spec.tlvs:
        lengths.append(at + layout.tag_bytes)
        at += layout.tag_bytes + layout.length_bytes + len(value)
    how = draw(st.sampled_from(["cut", "flip", "length", "append", "insert", "remove", "keep"]))
    if how == "cut":
        del raw[draw(st.integers(1, len(raw) - 1)) :]  # the empty datagram is the arbitrary octets' case
    elif how == "flip":
        for bit in draw(st.lists(st.integers(0, len(raw) * 8 - 1), min_size=1, max_size=4)):
            raw[bit // 8] ^= 0x80 >> bit % 8
    elif how == "length" and lengths:
        at, width = draw(st.sampled_from(lengths)), layout.length_bytes
        stated = int.from_bytes(raw[at : at + width], "big") + draw(st.sampled_from([-1, 1]))
        raw[at : at + width] = (stated % (1 << 8 * width)).to_bytes(width, "big")
    elif how in ("append", "length"):
        raw += draw(st.binary(min_size=1, max_size=20))
    elif how == "insert":
        at = draw(st.integers(0, len(raw)))
        raw[at:at] = draw(st.binary(min_size=1, max_size=8))
    elif how == "remove":
        at = draw(st.integers(0, len(raw) - 1))
        del raw[at : at + draw(st.integers(1, 8))]
    scheme = draw(st.one_of(st.just(spec.scheme), st.sampled_from(list(layout.schemes))))
    return bytes(raw), scheme


# ---- properties --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("binding", BINDINGS)
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_both_codecs_build_the_same_octets(binding, data):
    """(a) and the way back: the same octets, which both read the same way, well-formed exactly when both say."""
    codec, fast = CODECS[binding]
    spec = data.draw(specs(codec.layout))
    raw = build_fast(fast, spec)
    assert raw == build_scapy(codec, spec)
    message = assert_decode_alike(codec, fast, raw, spec.scheme)
    if spec.plane == "up" or spec.header.get("up_cp", 0) == 0:
        assert message.plane == spec.plane


@pytest.mark.parametrize("binding", BINDINGS)
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_both_codecs_read_any_octets_alike(binding, data):
    """(b) arbitrary octets, under any counter scheme (or none given: the binding's default)."""
    codec, fast = CODECS[binding]
    raw = data.draw(st.binary(max_size=300))
    scheme = data.draw(st.one_of(st.none(), st.sampled_from(list(codec.layout.schemes))))
    assert_decode_alike(codec, fast, raw, scheme)


@pytest.mark.parametrize("binding", BINDINGS)
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_both_codecs_read_mutated_messages_alike(binding, data):
    """(b) built messages cut short, with flipped bits, a TLV length off by one, extra or missing octets."""
    codec, fast = CODECS[binding]
    raw, scheme = data.draw(received(fast))
    assert_decode_alike(codec, fast, raw, scheme)


# ---- every command, plane and scheme, once each ------------------------------------------------------------


@pytest.mark.parametrize("binding", BINDINGS)
def test_every_command_plane_and_scheme(binding):
    codec, fast = CODECS[binding]
    layout = codec.layout
    for scheme in layout.schemes:
        protected = {
            "scheme": scheme,
            "key_id": 1,
            "counter": 5,
            "session_id": 7,
            "mac": bytes(range(layout.mac_bytes)),
        }
        for command in layout.commands:
            tlvs = [(name, bytes((layout.value_size(name) or (3, 3))[0])) for name in layout.tlv_lists.get(command, ())]
            for header in ({"scheme": scheme}, protected):
                raw = fast.cp(command, tlvs, **header)
                assert raw == bytes(scapy_cp(codec, command, tlvs, **header))
                assert assert_decode_alike(codec, fast, raw, scheme).command_name == command
        raw = fast.up(b"user data", **protected)
        assert raw == bytes(scapy_up(codec, b"user data", **protected))
        message = assert_decode_alike(codec, fast, raw, scheme)
        assert (message.plane, message.data, message.problems) == ("up", b"user data", [])


def test_known_problems_in_the_layers_words():
    codec, fast = CODECS["default"]
    unknown = fast.cp(0x7E, [(0xEE, b"zz")])
    assert fast.decode(unknown).problems == ["unknown command 0x7e", "unknown tag 0xee"]
    assert fast.decode(fast.cp("session_start", [("rand", bytes(17))])).problems == [
        "over-long TLV rand: 17 octets, expected 16"
    ]
    assert fast.decode(fast.cp("session_start", [("rand", bytes(16))])[:-13]).problems == [
        "truncated TLV rand: length says 16, 3 octet(s) present"
    ]
    assert fast.decode(b"").problems == ["empty datagram"]
    assert fast.decode(b"\x00\x01").problems == ["truncated message: 2 octet(s), the cp header needs 5"]
    for raw in (unknown, b"", b"\x00\x01", b"\x80\x00\x00"):
        assert_decode_alike(codec, fast, raw)


# ---- where the two differ on purpose, and the comparison's own check ---------------------------------------


def test_more_than_a_hundred_tlvs_decode_alike():
    """A CP message of 101 TLVs is well-formed octets: scapy's PacketListField raised MaximumItemsCount past
    conf.max_list_count from Codec.decode, which promises never to raise (a SUT's datagram could do it)."""
    codec, fast = CODECS["default"]
    raw = fast.cp("session_request", [("enterprise_setup", b"")] * (conf.max_list_count + 1))
    message = fast.decode(raw)
    assert (len(message.tlvs), message.problems) == (conf.max_list_count + 1, [])
    assert fast_fields(message) == scapy_fields(codec, codec.dissect(raw))


def test_fast_building_refuses_what_scapy_silently_alters():
    """scapy keeps the low bits of a header value too wide for its field (counter 2049 in 11 bits goes out as 1)
    and pads or cuts a MAC of the wrong size; the fast codec says no."""
    _, fast = CODECS["default"]
    with pytest.raises(ValueError, match="counter 2049 does not fit its 11 bits"):
        fast.cp("session_request", counter=2049)
    with pytest.raises(ValueError, match="the MAC is 8 octets, not 2"):
        fast.cp("session_request", key_id=1, mac=b"ab")
    with pytest.raises(ValueError, match="must fit 1 and 1 octet"):
        fast.cp("session_request", [("enterprise_setup", bytes(256))])
    with pytest.raises(TypeError, match="version: not a field of the cp header"):
        fast.cp("session_request", version=1)
    with pytest.raises(ValueError, match="no counter scheme 9"):
        fast.decode(b"\x00" * 8, 9)


def test_the_comparison_catches_a_codec_generated_from_another_layout():
    """Not vacuous: a fast codec generated with a 24-bit Session ID builds other octets and reads the default
    binding's messages otherwise than the layers do."""
    codec, _ = CODECS["default"]
    wrong = FastCodec(load_binding({"emsdp.header.session_id_bits": 24}))
    tlvs = [("imsi", bytes(8))]
    right = bytes(scapy_cp(codec, "session_request", tlvs, session_id=9))
    assert wrong.cp("session_request", tlvs, session_id=9) != right
    with pytest.raises(AssertionError):
        assert_decode_alike(codec, wrong, right)


def test_a_layout_and_its_binding_make_the_same_codec():
    binding = load_binding(BINDINGS["reshaped"])
    by_layout, by_binding = FastCodec(Layout.from_binding(binding)), FastCodec(binding)
    raw = by_layout.cp("session_terminate_request", scheme=3, key_id=1, counter=2**39 - 1, session_id=9)
    assert raw == by_binding.cp("session_terminate_request", scheme=3, key_id=1, counter=2**39 - 1, session_id=9)
    assert by_layout.decode(raw, 3) == by_binding.decode(raw, 3)


def test_the_fast_codec_imports_no_scapy():
    """It stands on the layout, the binding and the standard library only."""
    tree = ast.parse(Path(fast_module.__file__).read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    ours = {m for m in imported if m.startswith("conformance")}
    assert ours == {"conformance.binding", "conformance.emsdp.layout"}
    assert imported - ours <= {"__future__", "struct", "collections.abc", "dataclasses", "typing"}
