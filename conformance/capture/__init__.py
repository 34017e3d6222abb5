"""Packet capture: every UDP datagram the harness sends or receives, or sees on an interface, as a pcap.

:class:`PcapTap` and :class:`TappedUdpSocket` (and :func:`tap_datagram_protocol` for asyncio) record the
harness's own traffic at no privilege and a few µs a datagram; :class:`WireSniffer` captures traffic
between other parties and needs root.
"""

from conformance.capture.sniffer import CaptureError, WireSniffer
from conformance.capture.tap import PcapTap, TappedUdpSocket, tap_datagram_protocol

__all__ = ["CaptureError", "PcapTap", "TappedUdpSocket", "WireSniffer", "tap_datagram_protocol"]
