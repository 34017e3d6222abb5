"""The EMSDP codec the harness uses: build messages by name, decode bytes, describe packets for people."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from conformance.binding import load_binding
from conformance.emsdp.layers import EmsdpPacket, Layers, layers_for
from conformance.emsdp.layout import Layout
from conformance.emsdp.values import decode_value


class Codec:
    """EMSDP as one binding defines it. Build with `cp` / `up`, read with `decode`, show with `describe`."""

    def __init__(self, binding: Mapping[str, Any] | None = None):
        self.layout = Layout.from_binding(binding if binding is not None else load_binding())
        self.layers: Layers = layers_for(self.layout)

    def bind_udp(self) -> None:
        """Make scapy dissect UDP to or from the binding's port as EMSDP (e.g. in `rdpcap(...)[0].show()`)."""
        self.layers.bind_udp()

    def tlv(self, name: str, value: bytes) -> EmsdpPacket:
        return self.layers.tlv(tag=self.layout.tags[name], value=value)

    def cp(
        self,
        command: str | int,
        tlvs: Iterable[tuple[str, bytes] | EmsdpPacket] = (),
        *,
        scheme: int | None = None,
        **header: Any,
    ) -> EmsdpPacket:
        """A control-plane message: `command` by name (or code), TLVs as (name, value) pairs, header fields
        (key_id, counter, session_id, mac, ...) as keywords."""
        code = self.layout.commands[command] if isinstance(command, str) else command
        items = [t if isinstance(t, EmsdpPacket) else self.tlv(*t) for t in tlvs]
        cls = self.layers.cp(self.layout.default_scheme if scheme is None else scheme)
        return cls(cmd=code, tlvs=items, **header)

    def up(self, data: bytes, *, scheme: int | None = None, **header: Any) -> EmsdpPacket:
        """A user-plane message carrying `data` (already protected, if it should be)."""
        cls = self.layers.up(self.layout.default_scheme if scheme is None else scheme)
        return cls(up_cp=1, data=data, **header)

    def decode(self, data: bytes, scheme: int | None = None) -> EmsdpPacket:
        """Dissect received bytes with a counter scheme (default: the binding's). Never raises: what is wrong
        is listed in the packet's `problems`, and `bytes(packet)` gives back exactly `data`."""
        packet = self.layers.classify(data, scheme)(data)
        if not data:
            packet.problems.append("empty datagram")
        return packet

    def describe(self, packet: EmsdpPacket) -> dict[str, Any]:
        """A JSON-ready view: header fields, command, TLVs with decoded values, data, MAC and problems."""
        layout = self.layout
        if isinstance(packet, self.layers.truncated):
            return {
                "plane": None,
                "octets": len(bytes(packet)),
                "raw": bytes(packet).hex(),
                "problems": list(packet.problems),
            }
        view: dict[str, Any] = {"plane": packet.plane, "counter_scheme": packet.scheme, "octets": len(bytes(packet))}
        view["header"] = {name: packet.getfieldval(name) for name, _ in layout.header(packet.plane, packet.scheme)}
        if packet.plane == "cp":
            view["command"] = {"code": packet.cmd, "name": layout.command_names().get(packet.cmd)}
            view["tlvs"] = [self._describe_tlv(t) for t in packet.tlvs]
        else:
            view["data"] = packet.data.hex()
        view["mac"] = packet.mac.hex() if layout.mac_present(packet.key_id) else None
        view["problems"] = list(packet.problems)
        return view

    def _describe_tlv(self, tlv: Any) -> dict[str, Any]:
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
