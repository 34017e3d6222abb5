"""Reading UDP datagrams back from a pcap/pcapng file: what every decoded trace starts from."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

# (frame number from 1, time in epoch s, source (host, port), destination (host, port), UDP payload)
Datagram = tuple[int, float, tuple[str, int], tuple[str, int], bytes]


class TraceError(ValueError):
    """The file cannot be read as a capture."""


def udp_datagrams(path: str | Path, port: int | None = None) -> Iterator[Datagram]:
    """(frame number, time, source, destination, payload) of each UDP datagram, to or from `port` if given.
    Frame numbers count from 1, as Wireshark does; Ethernet padding is dropped by the UDP length."""
    from scapy.error import Scapy_Exception
    from scapy.layers.inet import UDP
    from scapy.layers.inet6 import IPv6  # noqa: F401  (registers IPv6 so its UDP is dissected)
    from scapy.utils import PcapReader

    try:
        reader = PcapReader(str(path))
    except (OSError, Scapy_Exception) as exc:
        raise TraceError(f"{path}: cannot read as pcap or pcapng: {exc}") from None
    with reader:
        for number, frame in enumerate(reader, 1):
            udp = frame.getlayer(UDP)
            if udp is None or (port is not None and port not in (udp.sport, udp.dport)):
                continue
            ip = udp.underlayer
            payload = bytes(udp)[8 : udp.len] if udp.len else bytes(udp.payload)
            yield number, float(frame.time), (str(ip.src), udp.sport), (str(ip.dst), udp.dport), payload
