"""The EMSDP codec the harness uses: build messages by name, decode bytes, describe packets for people.

Building and decoding go through the fast codec (fast.py: `struct`, generated from the binding's layout), which
the UE role, the reference SUTs and the engine use on every datagram. The scapy layers (layers.py), made from
the same layout, stay for what people read: `describe`, `dissect` (a packet to `show()`), pcaps and Wireshark.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from conformance.binding import Binding, load_binding
from conformance.emsdp.fast import FastCodec, Message
from conformance.emsdp.layout import Layout
from conformance.emsdp.values import decode_value

if TYPE_CHECKING:  # scapy is imported on first use of the layers: a reference SUT or a UE never needs it
    from conformance.emsdp.layers import EmsdpPacket, Layers


_COMPILED: dict[int, tuple[Binding, Layout, FastCodec]] = {}  # id -> (the binding kept alive, its codec)
_COMPILED_MAX = 16


def _compiled(binding: Mapping[str, Any]) -> tuple[Layout, FastCodec]:
    """The layout and fast codec of a binding, made once per `Binding` (read-only, so safe to share): every case
    context and UE makes a Codec, and reading the layout from the binding costs more than a whole exchange."""
    if not isinstance(binding, Binding):  # a plain mapping may change: compiled each time
        layout = Layout.from_binding(binding)
        return layout, FastCodec(layout)
    hit = _COMPILED.get(id(binding))
    if hit is None or hit[0] is not binding:
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.pop(next(iter(_COMPILED)))
        layout = Layout.from_binding(binding)
        hit = _COMPILED[id(binding)] = (binding, layout, FastCodec(layout))
    return hit[1], hit[2]


class Codec:
    """EMSDP as one binding defines it. Build with `cp` / `up`, read with `decode`, show with `describe`."""

    def __init__(self, binding: Mapping[str, Any] | None = None):
        self.layout, self.fast = _compiled(binding if binding is not None else load_binding())

    @cached_property
    def layers(self) -> Layers:
        """The scapy layers of this binding (made on first use: the hot path never needs them)."""
        from conformance.emsdp.layers import layers_for

        return layers_for(self.layout)

    def bind_udp(self) -> None:
        """Make scapy dissect UDP to or from the binding's port as EMSDP (e.g. in `rdpcap(...)[0].show()`)."""
        self.layers.bind_udp()

    def tlv(self, name: str, value: bytes) -> bytes:
        """One TLV's octets: tag ‖ length ‖ value."""
        return self.fast.tlv(name, value)

    def cp(
        self,
        command: str | int,
        tlvs: Iterable[tuple[str | int, bytes] | tuple[str | int, bytes, int] | bytes | EmsdpPacket] = (),
        *,
        scheme: int | None = None,
        **header: Any,
    ) -> Message:
        """A control-plane message: `command` by name (or code), TLVs as (name or tag, value[, length]) or as
        octets (a scapy TLV layer too), header fields (key_id, counter, session_id, mac, ...) as keywords."""
        items = [t if isinstance(t, tuple | bytes | bytearray) else bytes(t) for t in tlvs]  # bytes(): a scapy TLV
        return self.fast.decode(self.fast.cp(command, items, scheme=scheme, **header), scheme)

    def up(self, data: bytes, *, scheme: int | None = None, **header: Any) -> Message:
        """A user-plane message carrying `data` (already protected, if it should be)."""
        header.pop("up_cp", None)
        return self.fast.decode(self.fast.up(data, scheme=scheme, **header), scheme)

    def decode(self, data: bytes, scheme: int | None = None) -> Message:
        """Read received bytes with a counter scheme (default: the binding's). Never raises: what is wrong is
        listed in the message's `problems`, and `bytes(message)` gives back exactly `data`."""
        return self.fast.decode(data, scheme)

    def dissect(self, data: bytes, scheme: int | None = None) -> EmsdpPacket:
        """The scapy packet of received bytes, for `show()` and the layers' own view."""
        packet = self.layers.classify(data, scheme)(data)
        if not data:
            packet.problems.append("empty datagram")
        return packet

    def summary(self, packet: Message) -> str:
        """One line for an exchange log: plane or command, session, counter, Key ID, problems."""
        if packet.plane is None:
            return f"{len(bytes(packet))} octets, not EMSDP"
        names = self.layout.command_names()
        what = "UP data" if packet.plane == "up" else names.get(packet.cmd, f"{packet.cmd:#04x}")
        line = f"{what} session={packet.session_id} counter={packet.counter} key_id={packet.key_id}"
        return line + (f" problems={packet.problems}" if packet.problems else "")

    def describe(self, packet: Message | EmsdpPacket) -> dict[str, Any]:
        """A JSON-ready view: header fields, command, TLVs with decoded values, data, MAC and problems."""
        problems = list(packet.problems)
        if isinstance(packet, Message):  # the layers' view of its octets, with the problems noted on it since
            packet = self.dissect(bytes(packet), packet.scheme)
        layout = self.layout
        if isinstance(packet, self.layers.truncated):
            return {"plane": None, "octets": len(bytes(packet)), "raw": bytes(packet).hex(), "problems": problems}
        view: dict[str, Any] = {"plane": packet.plane, "counter_scheme": packet.scheme, "octets": len(bytes(packet))}
        view["header"] = {name: packet.getfieldval(name) for name, _ in layout.header(packet.plane, packet.scheme)}
        if packet.plane == "cp":
            view["command"] = {"code": packet.cmd, "name": layout.command_names().get(packet.cmd)}
            view["tlvs"] = [self._describe_tlv(t) for t in packet.tlvs]
        else:
            view["data"] = packet.data.hex()
        view["mac"] = packet.mac.hex() if layout.mac_present(packet.key_id) else None
        view["problems"] = problems
        return view

    def _describe_tlv(self, tlv: Any) -> dict[str, Any]:
        from conformance.emsdp.layers import EmsdpPacket

        if not isinstance(tlv, EmsdpPacket):
            return {"raw": bytes(tlv).hex(), "problem": "undecodable TLV octets"}
        name = tlv.tag_name
        # None until scapy builds a new TLV; a received TLV cut before its length field has none to show
        length = len(tlv.value) if tlv.length is None and not tlv.problems else tlv.length
        entry: dict[str, Any] = {"tag": tlv.tag, "name": name, "length": length, "value": tlv.value.hex()}
        if name is not None and not tlv.problems:
            try:
                entry["decoded"] = decode_value(self.layout, name, tlv.value)
            except ValueError as exc:
                entry["problem"] = str(exc)
        if tlv.problems:
            entry["problem"] = "; ".join(tlv.problems)
        return entry
