"""The harness's UDP socket towards an EMSDP peer (the UE's towards an HSE, the harness HSE's towards a UE):
optionally tapped (the pcap of the case), it hears ICMP errors (nothing listens there) and stamps each datagram it
reads with the kernel's receive time (SO_TIMESTAMPNS), so that when a datagram arrived is a fact, not the time it
was read. The harness's HSE keeps one bound socket for a whole run and taps it anew for each case (`retap`)."""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import sys
import time
from typing import Any

from conformance.capture.tap import PcapTap, TappedUdpSocket, enable_receive_timestamps, recv_stamped
from conformance.roles.errors import PortUnreachable

# An unconnected UDP socket hears of ICMP errors (port unreachable: nothing listens there) only with IP_RECVERR
# (Linux); the socket module does not always name it.
_LINUX = sys.platform.startswith("linux")
_RECVERR = {
    socket.AF_INET: (socket.IPPROTO_IP, getattr(socket, "IP_RECVERR", 11 if _LINUX else None)),
    socket.AF_INET6: (socket.IPPROTO_IPV6, getattr(socket, "IPV6_RECVERR", 25 if _LINUX else None)),
}
_UNREACHABLE = {errno.ECONNREFUSED: "ICMP port unreachable", errno.EHOSTUNREACH: "ICMP host unreachable"}


def _hear_icmp_errors(sock: socket.socket) -> None:
    level, option = _RECVERR.get(sock.family, (None, None))
    if option is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(level, option, 1)


class UdpLink:
    """A UDP socket that sends to one peer and reads from anyone, each datagram with its arrival time. `sock`: a
    socket of the caller's (e.g. bound where a UE under test sends to), else a new one."""

    def __init__(self, peer: tuple[str, int], tap: PcapTap | None, timeout: float, sock: socket.socket | None = None):
        self.peer = peer
        family = sock.family if sock is not None else socket.AF_INET6 if ":" in peer[0] else socket.AF_INET
        raw_socket = sock if sock is not None else socket.socket(family, socket.SOCK_DGRAM)
        self.sock: Any = TappedUdpSocket(tap, family, raw_socket) if tap else raw_socket
        self.sock.settimeout(timeout)
        _hear_icmp_errors(raw_socket)
        self._stamped = enable_receive_timestamps(raw_socket)
        self._raw_socket = raw_socket
        self._poll = select.poll() if hasattr(select, "poll") else None
        if self._poll is not None:
            self._poll.register(raw_socket.fileno(), select.POLLIN)

    def retap(self, tap: PcapTap | None) -> None:
        """Record into `tap` from now on (None: record nothing): the same socket, the next case's pcap."""
        timeout = self.sock.gettimeout()
        self.sock = TappedUdpSocket(tap, self._raw_socket.family, self._raw_socket) if tap else self._raw_socket
        self.sock.settimeout(timeout)

    def send(self, raw: bytes) -> int:
        """Send a datagram to the peer; when it left (ns since the epoch). PortUnreachable for an ICMP error."""
        now = time.time_ns()
        try:
            self.sock.sendto(raw, self.peer)
        except OSError as exc:  # an ICMP error from an earlier datagram, reported on this send
            raise self._unreachable(exc) from None
        return now

    def ready(self, seconds: float) -> bool:
        """Whether a datagram is there to read, waiting up to `seconds`."""
        if self._poll is not None:
            return bool(self._poll.poll(seconds * 1000))
        return bool(select.select([self._raw_socket], [], [], seconds)[0])

    def read(self, timeout: float | None) -> tuple[bytes, Any, int] | None:
        """One datagram, its sender and arrival (ns since the epoch, the kernel's stamp), waiting up to `timeout`
        (None: it is known to be there); None on timeout."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            if isinstance(self.sock, TappedUdpSocket):
                return self.sock.recvfrom_stamped(65535, self._stamped)
            return recv_stamped(self.sock, 65535, self._stamped)
        except (TimeoutError, BlockingIOError):
            return None
        except OSError as exc:  # ICMP port unreachable: nothing listens there (any more)
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: OSError) -> Exception:
        """PortUnreachable for an ICMP error the kernel reported (its queue emptied); other errors as they are."""
        what = _UNREACHABLE.get(exc.errno or 0)
        if what is None:
            return exc
        while self._poll is not None and any(events & select.POLLERR for _, events in self._poll.poll(0)):
            try:
                self._raw_socket.recvmsg(1, 512, socket.MSG_ERRQUEUE)
            except OSError:
                break
        return PortUnreachable(f"nothing answers at {self.peer[0]}:{self.peer[1]} ({what})")
