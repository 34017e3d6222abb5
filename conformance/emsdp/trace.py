"""Read the EMSDP messages of a pcap, tracking the counter scheme each flow negotiated.

The counter's width is not in the message: it comes from the HSE configuration of the flow's Session Start.
Rule (the generated Wireshark dissector applies the same one): every flow (the unordered pair of
address:port ends) starts with the binding's default scheme; once a Session Start carrying an HSE
configuration with a known counter scheme has been read, later messages of that flow use that scheme.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.capture.reader import Datagram, udp_datagrams
from conformance.emsdp.codec import Codec
from conformance.emsdp.fast import Message


@dataclass(frozen=True)
class TracedMessage:
    frame: int  # 1-based frame number in the file, as Wireshark counts
    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    scheme: int
    packet: Message

    def to_dict(self, codec: Codec) -> dict[str, Any]:
        return {
            "frame": self.frame,
            "time": self.time,
            "src": f"{self.src[0]}:{self.src[1]}",
            "dst": f"{self.dst[0]}:{self.dst[1]}",
            **codec.describe(self.packet),
        }


def read_trace(
    path: str | Path, codec: Codec, default_scheme: int | None = None, port: int | None = None
) -> Iterator[TracedMessage]:
    """The EMSDP datagrams of a pcap/pcapng file (UDP to or from `port`, default the binding's), in order."""
    return decode_trace(udp_datagrams(path, port or codec.layout.udp_port), codec, default_scheme)


def decode_trace(
    datagrams: Iterable[Datagram],
    codec: Codec,
    default_scheme: int | None = None,
) -> Iterator[TracedMessage]:
    """The datagrams (as `udp_datagrams` gives them, e.g. a live tap's) read as EMSDP, in order."""
    layout = codec.layout
    start = layout.default_scheme if default_scheme is None else default_scheme
    flows: dict[frozenset[tuple[str, int]], int] = {}
    for number, when, src, dst, payload in datagrams:
        flow = frozenset((src, dst))
        scheme = flows.get(flow, start)
        packet = codec.decode(payload, scheme)
        learned = _negotiated_scheme(codec, packet)
        if learned is not None:
            flows[flow] = learned
        yield TracedMessage(number, when, src, dst, scheme, packet)


def _negotiated_scheme(codec: Codec, packet: Message) -> int | None:
    """The counter scheme a Session Start's HSE configuration announces, if it is one the binding knows."""
    layout = codec.layout
    if (
        getattr(packet, "cmd", None) != layout.commands["session_start"]
        or "counter_scheme" not in layout.hse_config_fields
    ):
        return None
    index = layout.hse_config_fields.index("counter_scheme")
    for tlv in packet.tlvs:
        if getattr(tlv, "tag", None) == layout.tags["hse_config"] and len(tlv.value) > index:
            scheme = tlv.value[index]
            if scheme in layout.schemes:
                return scheme
            packet.problems.append(f"HSE configuration announces counter scheme {scheme}, unknown to the binding")
    return None


def render_text(message: TracedMessage, codec: Codec) -> str:
    """One block per message, in the spirit of `tshark -V`: where from, header, command, TLVs, problems."""
    import datetime

    view = codec.describe(message.packet)
    when = datetime.datetime.fromtimestamp(message.time, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    lines = [
        f"Frame {message.frame}: {when} UTC  {message.src[0]}:{message.src[1]} -> {message.dst[0]}:{message.dst[1]}"
        f"  ({view['octets']} octets)"
    ]
    if view["plane"] is None:
        lines.append(f"  EMSDP (not decodable): {view['raw']}")
    else:
        plane = "control plane" if view["plane"] == "cp" else "user plane"
        lines.append(f"  EMSDP {plane}, counter scheme {view['counter_scheme']}")
        lines.append("    " + "  ".join(f"{name}={value}" for name, value in view["header"].items()))
        if view["plane"] == "cp":
            command = view["command"]
            lines.append(f"    command: {command['name'] or 'unknown'} ({command['code']:#04x})")
            for tlv in view["tlvs"]:
                if "tag" not in tlv:
                    lines.append(f"    TLV ?: {tlv['raw']}")
                    continue
                name = tlv["name"] or "unknown"
                lines.append(f"    TLV {name} ({tlv['tag']:#04x}), length {tlv['length']}: {tlv['value']}")
                if tlv.get("decoded", tlv["value"]) != tlv["value"]:  # say it only when it adds something
                    decoded = tlv["decoded"]
                    if isinstance(decoded, dict):
                        decoded = ", ".join(f"{k}={v}" for k, v in decoded.items())
                    lines.append(f"      = {decoded}")
        else:
            lines.append(f"    data: {view['data']}")
        if view["mac"] is not None:
            lines.append(f"    MAC: {view['mac']}")
    lines.extend(f"  ! {problem}" for problem in view["problems"])
    return "\n".join(lines)
