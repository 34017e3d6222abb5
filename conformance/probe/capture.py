"""The datagrams the probe reasons about: read from pcaps, each with the evidence that names it.

What the SUT sends is its own reading of the binding, so it decides. What its peer sends is the peer's reading
(in a live probe, the candidates the probe tried, most of them wrong), so it decides only when the SUT answered
it: the next datagram of the flow comes from the SUT, in the same session, and is not a Message Reject. Every
message is named as a lab finds it again: pcap, its SHA-256, frame number (as Wireshark counts), and the
SHA-256 of the datagram itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.capture.reader import udp_datagrams


@dataclass(frozen=True)
class Seen:
    """One UDP datagram to or from the SUT."""

    pcap: str
    pcap_sha256: str
    frame: int
    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes
    from_sut: bool
    flow: tuple[str, tuple[str, int]]  # (pcap, the peer's address): one UE socket's exchange

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()

    def evidence(self, what: str = "") -> dict[str, Any]:
        """How a report names this message."""
        found = {
            "pcap": self.pcap,
            "pcap_sha256": self.pcap_sha256,
            "frame": self.frame,
            "message_sha256": self.sha256,
            "direction": "from the SUT" if self.from_sut else "to the SUT",
        }
        return {**found, "what": what} if what else found

    def name(self) -> str:
        return f"frame {self.frame} of {Path(self.pcap).name} ({'from' if self.from_sut else 'to'} the SUT)"


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_captures(paths: Iterable[str | Path], sut_port: int) -> list[Seen]:
    """The datagrams to or from the SUT's UDP port in each pcap, in file order, pcap after pcap. A datagram seen
    twice in a row (both ends tapped into one file, as on `lo`) is kept once."""
    seen: list[Seen] = []
    for path in paths:
        sha = file_sha256(path)
        last: tuple[Any, ...] | None = None
        for frame, when, src, dst, payload in udp_datagrams(path, sut_port):
            key = (src, dst, payload)
            if key == last:
                continue
            last = key
            from_sut = src[1] == sut_port
            peer = dst if from_sut else src
            seen.append(Seen(str(path), sha, frame, when, src, dst, payload, from_sut, (str(path), peer)))
    return seen
