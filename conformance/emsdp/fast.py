"""A fast EMSDP codec on `struct` and `int.from_bytes`, generated from the same `Layout` as the scapy layers.

scapy (layers.py) stays the reference: it shows packets to people and feeds the Wireshark comparison. This codec
is for the hot path. Nothing in it is a second copy of the wire format: when a `FastCodec` is made, every header
field's shift and mask, the header and fixed-part sizes of each plane and counter scheme, the MAC's size per Key
ID, the TLV tag and length widths, the tag and command tables and each TLV's allowed value size are computed
from the `Layout`, so an override changes this codec exactly as it changes the layers (tests/emsdp/
test_fast_codec.py checks the two octet for octet and field for field, over several bindings).

Building returns bytes. Decoding returns a `Message` whose fields and `problems` are those the scapy layers
give for the same octets, in the same words and order; like `Codec.decode`, it never raises on any input.

Where the two differ on purpose, building refuses what scapy silently alters: a header value wider than its
field (scapy keeps its low bits) and a MAC of the wrong size (scapy pads or cuts it) raise `ValueError`; and
decoding reads any number of TLVs, where scapy raises once a message has more than `conf.max_list_count` (100).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from conformance.binding import load_binding
from conformance.emsdp.layout import PLANES, Layout

# The command code is one octet: the binding's emsdp.header.command_bits admits 8 only, and the layers write
# it as one octet too (the Layout does not carry it).
COMMAND_BYTES = 1

# struct codes of the TLV tag and length widths the binding admits (emsdp.tlv.tag_bytes and length_bytes: 1..2)
_UINT = {1: "B", 2: "H"}


class Tlv(NamedTuple):
    """One TLV as read: `name` is None for a tag the binding does not define; `length` is None when the octets
    end before the length field (then `value` holds the octets that were left)."""

    tag: int
    name: str | None
    length: int | None
    value: bytes

    @property
    def tag_name(self) -> str | None:  # as the scapy TLV layer calls it
        return self.name


@dataclass(slots=True, frozen=True)
class Message:
    """A decoded datagram. `plane` is None when it is too short for a header (then `data` holds all its octets
    and `header` is empty); `command` and `tlvs` belong to the CP, `data` to the UP; `mac` is None when the Key
    ID says there is none. `problems` is empty for a well-formed message."""

    plane: str | None
    scheme: int
    header: dict[str, int]
    command: int | None
    command_name: str | None
    tlvs: tuple[Tlv, ...]
    data: bytes | None
    mac: bytes | None
    problems: list[str]
    raw: bytes = field(repr=False)

    def __bytes__(self) -> bytes:
        return self.raw

    @property
    def key_id(self) -> int | None:
        return self.header.get("key_id")

    @property
    def counter(self) -> int | None:
        return self.header.get("counter")

    @property
    def session_id(self) -> int | None:
        return self.header.get("session_id")

    # -- what the scapy layers offer and the harness reads: `cmd`, `fields`, `getfieldval`, header fields as
    # attributes (`message.version`) -----------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        header = object.__getattribute__(self, "header")
        if name in header:
            return header[name]
        raise AttributeError(f"the message has no field {name}")

    @property
    def cmd(self) -> int | None:
        return self.command

    @property
    def fields(self) -> dict[str, Any]:
        """The header fields, with the command code on the CP (`cmd`), as scapy's `Packet.fields` names them."""
        return {**self.header, "cmd": self.command} if self.plane == "cp" else dict(self.header)

    def getfieldval(self, name: str) -> Any:
        """A header field, `cmd`, `data`, `mac` or `tlvs` by the layers' names; AttributeError if it has none."""
        if name in self.header:
            return self.header[name]
        value = {"cmd": self.command, "data": self.data, "mac": self.mac, "tlvs": self.tlvs or None}.get(name)
        if value is None:
            raise AttributeError(f"the message has no field {name}")
        return value

    def with_mac(self, mac: bytes) -> Message:
        """The same message with another MAC of the same size (the header says how many octets it has)."""
        if self.mac is None or len(mac) != len(self.mac) or self.raw[len(self.raw) - len(mac) :] != self.mac:
            raise ValueError("only a whole message carrying a MAC of this size can take another")
        raw = self.raw[: len(self.raw) - len(mac)] + bytes(mac)
        return dataclasses.replace(self, mac=bytes(mac), problems=list(self.problems), raw=raw)


@dataclass(frozen=True)
class _Shape:
    """The messages of one plane under one counter scheme, precomputed from the layout."""

    plane: str
    scheme: int
    header_bytes: int
    fixed: int  # the header, and on the CP the command octet: shorter datagrams cannot be read as this plane
    fields: tuple[tuple[str, int, int], ...]  # (field, right shift in the header integer, mask) in order
    widths: Mapping[str, int]  # field -> bits
    allowed: frozenset[str]  # what a message of this shape may be given: its fields and the MAC
    defaults: Mapping[str, int]  # what a field not given is built with
    key_id: tuple[int, int]  # (shift, mask) of the Key ID
    mac_by_key_id: tuple[int, ...]  # octets of MAC a message with Key ID k carries, for each k


def _shape(layout: Layout, plane: str, scheme: int) -> _Shape:
    header = layout.header(plane, scheme)
    header_bytes = layout.header_bytes(plane, scheme)
    fields, widths = [], {}
    for name, bits in header:
        offset = layout.bit_offset(name, plane, scheme)
        assert offset is not None  # every field of layout.header has one
        fields.append((name, header_bytes * 8 - offset - bits, (1 << bits) - 1))
        widths[name] = bits
    defaults = dict.fromkeys(widths, 0)
    if "version" in defaults:
        defaults["version"] = layout.version_value
    defaults["up_cp"] = int(plane == "up")
    key_id = next((shift, mask) for name, shift, mask in fields if name == "key_id")
    mac = tuple(layout.mac_bytes if layout.mac_present(k) else 0 for k in range(key_id[1] + 1))
    fixed = header_bytes + (COMMAND_BYTES if plane == "cp" else 0)
    allowed = frozenset([*widths, "mac"])
    return _Shape(plane, scheme, header_bytes, fixed, tuple(fields), widths, allowed, defaults, key_id, mac)


class FastCodec:
    """EMSDP as one binding (or `Layout`) defines it, without scapy. `cp` / `up` / `tlv` build bytes; `decode`
    reads bytes into a `Message`."""

    def __init__(self, layout_or_binding: Layout | Mapping[str, Any] | None = None):
        if isinstance(layout_or_binding, Layout):
            layout = layout_or_binding
        else:
            layout = Layout.from_binding(layout_or_binding if layout_or_binding is not None else load_binding())
        unsupported = {w for w in (layout.tag_bytes, layout.length_bytes) if w not in _UINT}
        if unsupported:
            raise ValueError(f"TLV tag and length widths must be 1 or 2 octets, not {sorted(unsupported)}")
        self.layout = layout
        self._shapes = {(plane, s): _shape(layout, plane, s) for plane in PLANES for s in layout.schemes}
        self._tlv_head = struct.Struct(">" + _UINT[layout.tag_bytes] + _UINT[layout.length_bytes])
        self._tag_names = layout.tag_names()
        self._command_names = layout.command_names()
        self._sizes = {name: size for name in layout.tags if (size := layout.value_size(name)) is not None}
        # The UP/CP flag is read where the default scheme puts it, as Layout.plane_of (and so the layers) does.
        flag = layout.bit_offset("up_cp", "cp", layout.default_scheme)
        assert flag is not None  # the binding requires the flag (up_cp_bits is 1..1)
        self._flag_octet, self._flag_shift = flag // 8, 7 - flag % 8
        # per scheme: the (CP, UP) shapes, indexed by the flag's value
        self._by_scheme = {s: (self._shapes["cp", s], self._shapes["up", s]) for s in layout.schemes}

    # ---- building -----------------------------------------------------------------------------------------

    def tlv(self, tag: str | int, value: bytes, length: int | None = None) -> bytes:
        """tag ‖ length ‖ value: `tag` by name or code; `length` defaults to the value's, and may be given
        otherwise to build a TLV that lies about its size."""
        code = self.layout.tags[tag] if isinstance(tag, str) else tag
        try:
            return self._tlv_head.pack(code, len(value) if length is None else length) + bytes(value)
        except struct.error:
            raise ValueError(
                f"TLV tag {code} and length {len(value) if length is None else length} must fit "
                f"{self.layout.tag_bytes} and {self.layout.length_bytes} octet(s)"
            ) from None

    def cp(
        self,
        command: str | int,
        tlvs: Iterable[tuple[str | int, bytes] | tuple[str | int, bytes, int] | bytes] = (),
        *,
        scheme: int | None = None,
        **header: Any,
    ) -> bytes:
        """A control-plane message: `command` by name or code; TLVs as (name or tag, value) pairs, or
        (name or tag, value, length) to state a length of one's choosing, or as octets already encoded; header
        fields (key_id, counter, session_id, rfu, version, mac, ...) as keywords, each defaulting as the layers'
        do."""
        shape = self._shape_of("cp", scheme)
        code = self.layout.commands[command] if isinstance(command, str) else command
        if not 0 <= code < 1 << 8 * COMMAND_BYTES:
            raise ValueError(f"command code {code} must fit {COMMAND_BYTES} octet(s)")
        head, mac = self._header(shape, header)
        tlv = self.tlv
        items = [t if isinstance(t, bytes | bytearray) else tlv(*t) for t in tlvs]
        return b"".join([head, code.to_bytes(COMMAND_BYTES, "big"), *items, mac])

    def up(self, data: bytes, *, scheme: int | None = None, **header: Any) -> bytes:
        """A user-plane message carrying `data` (already protected, if it should be)."""
        if "up_cp" in header:
            raise TypeError("up() sets up_cp itself")
        head, mac = self._header(self._shape_of("up", scheme), header)
        return head + bytes(data) + mac

    def replace(self, message: Message, **header: int) -> bytes:
        """A decoded message's octets with header fields changed, its body kept; its MAC is kept when the new
        Key ID wants one of the same size, else zeros of the size it wants (to be sealed again)."""
        if message.plane is None:
            raise ValueError("a datagram too short for a header has no header fields to change")
        shape = self._shapes[message.plane, message.scheme]
        values = {**message.header, **header}
        mac = message.mac or b""
        body = message.raw[shape.header_bytes : len(message.raw) - len(mac)]
        wanted = shape.mac_by_key_id[values["key_id"] & shape.key_id[1]]
        head, new_mac = self._header(shape, {**values, "mac": mac if len(mac) == wanted else bytes(wanted)})
        return head + body + new_mac

    def _shape_of(self, plane: str, scheme: int | None) -> _Shape:
        try:
            return self._shapes[plane, self.layout.default_scheme if scheme is None else scheme]
        except KeyError:
            raise ValueError(f"no counter scheme {scheme}: the binding defines {list(self.layout.schemes)}") from None

    def _header(self, shape: _Shape, given: Mapping[str, Any]) -> tuple[bytes, bytes]:
        """The header octets and the MAC octets (none when the Key ID wants no MAC) of a message."""
        unknown = given.keys() - shape.allowed
        if unknown:
            raise TypeError(
                f"{', '.join(sorted(unknown))}: not a field of the {shape.plane} header under counter scheme "
                f"{shape.scheme} ({', '.join(shape.widths)})"
            )
        value = 0
        defaults = shape.defaults
        for name, shift, mask in shape.fields:
            number = given.get(name, defaults[name])
            if not 0 <= number <= mask:
                raise ValueError(f"{name} {number} does not fit its {shape.widths[name]} bits")
            value |= number << shift
        octets = shape.mac_by_key_id[value >> shape.key_id[0] & shape.key_id[1]]
        mac = bytes(given.get("mac", bytes(octets))) if octets else b""
        if len(mac) != octets:
            raise ValueError(f"the MAC is {octets} octets, not {len(mac)}")
        return value.to_bytes(shape.header_bytes, "big"), mac

    # ---- reading ------------------------------------------------------------------------------------------

    def decode(self, data: bytes, scheme: int | None = None) -> Message:
        """Read received bytes with a counter scheme (default: the binding's). Never raises on any octets: what
        is wrong is listed in `problems`, in the layers' words, and `bytes(message)` gives back `data`."""
        if type(data) is not bytes:
            data = bytes(data)
        scheme = self.layout.default_scheme if scheme is None else scheme
        try:
            shapes = self._by_scheme[scheme]
        except KeyError:
            raise ValueError(f"no counter scheme {scheme}: the binding defines {list(self.layout.schemes)}") from None
        size = len(data)
        if not size:
            return Message(None, scheme, {}, None, None, (), b"", None, ["empty datagram"], data)
        plane = data[self._flag_octet] >> self._flag_shift & 1 if size > self._flag_octet else None
        shape = shapes[plane or 0]
        if plane is None or size < shape.fixed:
            problem = f"truncated message: {size} octet(s), the {shape.plane} header needs {shape.fixed}"
            return Message(None, scheme, {}, None, None, (), data, None, [problem], data)
        header_bytes = shape.header_bytes
        value = int.from_bytes(data[:header_bytes], "big")
        header = {name: value >> shift & mask for name, shift, mask in shape.fields}
        mac_octets = shape.mac_by_key_id[value >> shape.key_id[0] & shape.key_id[1]]
        fixed = shape.fixed
        problems: list[str] = []
        end = size - mac_octets  # of the body
        if end < fixed:
            problems.append(
                f"truncated message: {size} octet(s), header{' and command' if plane == 0 else ''}"
                f"{' and MAC' if mac_octets else ''} need {fixed + mac_octets}"
            )
            end = fixed
        mac = data[end : end + mac_octets] if mac_octets else None
        if plane:
            return Message("up", scheme, header, None, None, (), data[header_bytes:end], mac, problems, data)
        command = data[header_bytes]
        command_name = self._command_names.get(command)
        if command_name is None:
            problems.append(f"unknown command {command:#04x}")
        tlvs = self._tlvs(data, fixed, end, problems)
        return Message("cp", scheme, header, command, command_name, tlvs, None, mac, problems, data)

    def _tlvs(self, data: bytes, at: int, end: int, problems: list[str]) -> tuple[Tlv, ...]:
        """The TLVs in data[at:end], their problems appended to `problems` in order."""
        tlvs = []
        head = self._tlv_head.size
        unpack = self._tlv_head.unpack_from
        names = self._tag_names
        sizes = self._sizes
        while at < end:
            if end - at < head:
                tag = int.from_bytes(data[at : min(end, at + self.layout.tag_bytes)], "big")
                problems.append(f"truncated TLV: {end - at} octet(s) left, a tag and length need {head}")
                tlvs.append(Tlv(tag, names.get(tag), None, data[at:end]))
                break
            tag, length = unpack(data, at)
            start, at = at + head, at + head + length
            name = names.get(tag)
            if at > end:
                problems.append(
                    f"truncated TLV {name or hex(tag)}: length says {length}, {end - start} octet(s) present"
                )
                tlvs.append(Tlv(tag, name, length, data[start:end]))
                break
            if name is None:
                problems.append(f"unknown tag {tag:#04x}")
            elif (bounds := sizes.get(name)) is not None and not bounds[0] <= length <= bounds[1]:
                problems.append(f"{self.layout.size_problem(name, length)}")
            tlvs.append(Tlv(tag, name, length, data[start:at]))
        return tuple(tlvs)
