"""scapy layers for EMSDP, built from a `Layout`.

A binding can change widths, tags and the port, so the classes are made per layout (and cached). One class per
plane and counter scheme: the counter's width is not in the message but negotiated in Session Start.

Malformed input never raises: a TLV whose length runs past the message, a value of the wrong size, an
unknown tag or command, bytes too short for the header — each is recorded in the packet's `problems`
list, and the bytes stay on the packet so that it still shows what was received.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scapy.fields import (
    BitField,
    ConditionalField,
    Field,
    FieldLenField,
    PacketListField,
    StrFixedLenField,
    StrLenField,
)
from scapy.layers.inet import UDP
from scapy.packet import Packet, bind_layers

from conformance.emsdp.layout import Layout

MAX_DATAGRAM = 65_535  # octets of a UDP payload: no message holds more TLVs than that


def _int_field(name: str, octets: int, enum: dict[int, str] | None = None) -> Field:
    from scapy.fields import ByteEnumField, ShortEnumField

    return (ByteEnumField if octets == 1 else ShortEnumField)(name, 0, enum or {})


class EmsdpPacket(Packet):
    """Base of every EMSDP class: carries the problems found while dissecting."""

    layout: Layout

    @property
    def problems(self) -> list[str]:
        """What is wrong with the bytes this packet was dissected from (empty for a well-formed one)."""
        return self.__dict__.setdefault("_problems", [])

    def pre_dissect(self, s: bytes) -> bytes:
        self.__dict__["_problems"] = []
        return s

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


def _truncated_message(octets: int, plane: str, mac: int, fixed: int) -> str:
    """The problem of a message too short for its header (and command, on the CP) and its MAC."""
    return (
        f"truncated message: {octets} octet(s), header{' and command' if plane == 'cp' else ''}"
        f"{' and MAC' if mac else ''} need {fixed + mac}"
    )


def _tlv_problems(items: list[Packet]) -> list[str]:
    """The problems of a message's TLVs, in order; bytes scapy fell back to Raw for (no TLV could be read from
    them) are one problem each."""
    problems: list[str] = []
    for item in items:
        if isinstance(item, EmsdpPacket):
            problems.extend(item.problems)
        else:
            problems.append(f"undecodable TLV octets {bytes(item).hex()}")
    return problems


class Layers:
    """The scapy classes of one layout: `tlv`, `cp(scheme)`, `up(scheme)` and the UDP-bound dispatcher."""

    def __init__(self, layout: Layout):
        self.layout = layout
        self.tlv = self._tlv_class()
        self._classes = {(plane, s): self._message_class(plane, s) for plane in ("cp", "up") for s in layout.schemes}
        self.truncated, self._truncated = self._truncated_classes()
        self.dispatcher = self._dispatcher_class()

    def cp(self, scheme: int) -> type[EmsdpPacket]:
        return self._classes["cp", scheme]

    def up(self, scheme: int) -> type[EmsdpPacket]:
        return self._classes["up", scheme]

    def message_class(self, plane: str, scheme: int) -> type[EmsdpPacket]:
        return self._classes[plane, scheme]

    def bind_udp(self) -> None:
        """Dissect UDP payloads to or from the binding's port as EMSDP (both directions)."""
        bind_layers(UDP, self.dispatcher, dport=self.layout.udp_port)
        bind_layers(UDP, self.dispatcher, sport=self.layout.udp_port)

    # ---- class factories ------------------------------------------------------------------------------

    def _tlv_class(self) -> type[EmsdpPacket]:
        layout = self.layout
        tag_names = layout.tag_names()
        header = layout.tag_bytes + layout.length_bytes
        length_fmt = "B" if layout.length_bytes == 1 else "H"

        class Tlv(EmsdpPacket):
            name = "EMSDP TLV"
            fields_desc = [
                _int_field("tag", layout.tag_bytes, tag_names),
                FieldLenField("length", None, length_of="value", fmt=length_fmt),
                StrLenField("value", b"", length_from=lambda p: p.length),
            ]

            def do_dissect(self, s: bytes) -> bytes:
                if len(s) < header:
                    self.problems.append(f"truncated TLV: {len(s)} octet(s) left, a tag and length need {header}")
                    self.fields.update(tag=int.from_bytes(s[: layout.tag_bytes], "big"), length=None, value=s)
                    self.raw_packet_cache = None
                    return b""
                return super().do_dissect(s)

            def post_dissect(self, s: bytes) -> bytes:
                if self.length is None:  # too short for a length: flagged in do_dissect
                    return s
                name = tag_names.get(self.tag)
                if len(self.value) < self.length:
                    self.problems.append(
                        f"truncated TLV {name or hex(self.tag)}: length says {self.length}, "
                        f"{len(self.value)} octet(s) present"
                    )
                elif name is None:
                    self.problems.append(f"unknown tag {self.tag:#04x}")
                elif problem := layout.size_problem(name, len(self.value)):
                    self.problems.append(problem)
                return s

            @property
            def tag_name(self) -> str | None:
                return tag_names.get(self.tag)

        Tlv.layout = layout
        return Tlv

    def _message_class(self, plane: str, scheme: int) -> type[EmsdpPacket]:
        """The class of `plane` messages under counter `scheme`: its fields, and the problems it records."""
        layout = self.layout
        command_names = layout.command_names()
        fields = self._message_fields(plane, scheme, command_names)
        fixed = layout.header_bytes(plane, scheme) + (1 if plane == "cp" else 0)
        mac_octets = self._mac_octets(plane, scheme)
        title = f"EMSDP {plane.upper()} (counter scheme {scheme})"

        class Message(EmsdpPacket):
            name = title
            fields_desc = fields

            def pre_dissect(self, s: bytes) -> bytes:
                super().pre_dissect(s)
                mac = mac_octets(s)
                self._body_bytes = max(0, len(s) - fixed - mac)
                if len(s) < fixed + mac:
                    self.problems.append(_truncated_message(len(s), plane, mac, fixed))
                return s

            def do_dissect(self, s: bytes) -> bytes:
                rest = super().do_dissect(s)
                if plane == "cp" and self.cmd not in command_names:
                    self.problems.append(f"unknown command {self.cmd:#04x}")
                return rest

            def post_dissect(self, s: bytes) -> bytes:
                self.problems.extend(_tlv_problems(getattr(self, "tlvs", None) or []))
                if s:
                    self.problems.append(f"{len(s)} octet(s) after the MAC")
                return s

            @property
            def plane(self) -> str:
                return plane

            @property
            def scheme(self) -> int:
                return scheme

        Message.layout = layout
        return Message

    def _message_fields(self, plane: str, scheme: int, command_names: dict[int, str]) -> list[Field]:
        """The header's bit fields; the command and its TLVs (CP) or the data (UP); the MAC when Key ID wants one.
        The body's length is the `_body_bytes` that the message's `pre_dissect` sets."""
        layout = self.layout
        fields: list[Field] = [
            BitField(name, layout.version_value if name == "version" else 0, bits)
            for name, bits in layout.header(plane, scheme)
        ]
        if plane == "cp":
            fields.append(_int_field("cmd", 1, command_names))  # "command" is a Packet method
            # as many TLVs as the octets allow: past scapy's conf.max_list_count (100) a SUT's datagram would make
            # decode raise, and a decode never raises
            fields.append(
                PacketListField("tlvs", [], self.tlv, length_from=lambda p: p._body_bytes, max_count=MAX_DATAGRAM)
            )
        else:
            # "data", not "payload": scapy's Packet.payload is the next layer
            fields.append(StrLenField("data", b"", length_from=lambda p: p._body_bytes))
        fields.append(
            ConditionalField(
                StrFixedLenField("mac", b"\x00" * layout.mac_bytes, layout.mac_bytes),
                lambda p: layout.mac_present(p.key_id),
            )
        )
        return fields

    def _mac_octets(self, plane: str, scheme: int) -> Callable[[bytes], int]:
        """The octets of MAC that trail a message's bytes, by the Key ID in its header (none when the bytes are
        too short for the header)."""
        layout = self.layout
        header_bytes = layout.header_bytes(plane, scheme)
        key_id_at = layout.bit_offset("key_id", plane, scheme)
        key_id_bits = layout.field_bits["key_id"]

        def key_id_of(s: bytes) -> int:
            value = int.from_bytes(s[:header_bytes], "big") >> (header_bytes * 8 - key_id_at - key_id_bits)
            return value & ((1 << key_id_bits) - 1)

        def mac_octets(s: bytes) -> int:
            return layout.mac_bytes if len(s) >= header_bytes and layout.mac_present(key_id_of(s)) else 0

        return mac_octets

    def classify(self, data: bytes, scheme: int | None = None) -> type[EmsdpPacket]:
        """The class to dissect `data` with: CP or UP by the UP/CP flag, or `Truncated` when the bytes cannot
        hold the fixed part (header, command, MAC) of that plane."""
        scheme = self.layout.default_scheme if scheme is None else scheme
        plane = self.layout.plane_of(data)
        if plane is None or len(data) < self.layout.header_bytes(plane, scheme) + (plane == "cp"):
            return self._truncated[scheme]
        return self.message_class(plane, scheme)

    def _truncated_classes(self) -> tuple[type[EmsdpPacket], dict[int, type[EmsdpPacket]]]:
        """A base class (for isinstance) and one subclass per counter scheme, which sets the header size."""
        layout = self.layout

        class Truncated(EmsdpPacket):
            """Too short to be an EMSDP message of either plane: the bytes, as received."""

            name = "EMSDP (truncated)"
            fields_desc = [StrLenField("data", b"", length_from=lambda p: p._length)]
            scheme = layout.default_scheme

            def pre_dissect(self, s: bytes) -> bytes:
                super().pre_dissect(s)
                self._length = len(s)
                plane = layout.plane_of(s)
                need = layout.header_bytes(plane or "cp", self.scheme) + (plane != "up")
                self.problems.append(f"truncated message: {len(s)} octet(s), the {plane or 'cp'} header needs {need}")
                return s

        return Truncated, {s: type(f"Truncated{s}", (Truncated,), {"scheme": s}) for s in layout.schemes}

    def _dispatcher_class(self) -> type[EmsdpPacket]:
        layers = self

        class Emsdp(EmsdpPacket):
            """Picks the class from the bytes (see `Layers.classify`), with the default counter scheme."""

            name = "EMSDP"

            @classmethod
            def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kwargs: Any) -> type[Packet]:
                return layers.classify(_pkt or b"")

        return Emsdp


_LAYERS: dict[str, Layers] = {}


def layers_for(layout: Layout) -> Layers:
    """One set of classes per distinct layout: equal bindings share classes, so scapy's registry stays small."""
    key = repr(layout)
    if key not in _LAYERS:
        _LAYERS[key] = Layers(layout)
    return _LAYERS[key]
