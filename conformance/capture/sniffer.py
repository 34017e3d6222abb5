"""Capture UDP traffic on an interface into a pcap, for exchanges the harness is not an endpoint of.

scapy is imported only in :meth:`WireSniffer.start`, and only the modules needed (not ``scapy.all``, about
1.6 s), so that importing :mod:`conformance.capture` stays cheap.

Duplicates on ``lo``: a packet socket sees every loopback packet twice, the outgoing copy and the incoming
one. On a loopback interface the sniffer reads through scapy's ``L2Socket``, which drops the copies the
kernel marks PACKET_OUTGOING before dissecting them, so each datagram is written once, with or without
libpcap. On other interfaces the sent and the received packets are different packets, so ``L2ListenSocket``
keeps both directions.

libpcap (Debian ``libpcap0.8``) is only used to compile a BPF filter ``udp port N`` that the kernel applies;
without it the same selection is made in Python (``lfilter``), which costs a dissection per unrelated packet.
The one hard requirement is a packet socket: root, or CAP_NET_RAW.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading
import time
from typing import Any

ARPHRD_LOOPBACK = 772
BUFSIZE = 2**25  # capped by the kernel at net.core.rmem_max; scapy's 64 KiB held only ~80 loopback datagrams


class CaptureError(RuntimeError):
    """A capture cannot start; the message says what is missing and how to get it."""


def have_libpcap() -> bool:
    """Whether scapy can load libpcap to compile BPF filters (the lookup scapy itself does)."""
    import ctypes.util  # about 18 ms (it brings subprocess), so only when a capture starts

    return ctypes.util.find_library("pcap") is not None


def _is_loopback(iface: str) -> bool:
    try:
        with open(f"/sys/class/net/{iface}/type") as f:
            return int(f.read()) == ARPHRD_LOOPBACK
    except FileNotFoundError:
        raise CaptureError(f"no network interface {iface!r} (see `ip link`)") from None


class WireSniffer:
    """Writes every UDP packet on ``iface`` (to or from ``port``, if given) to the pcap at ``path`` as it arrives.

    ``start()`` returns once the packet socket is open and the capture thread runs: from then on nothing is
    missed: packets wait in the socket buffer, 32 MiB or net.core.rmem_max if lower (4 MiB on the project's
    machines, enough for 5,000 back-to-back datagrams). ``stop()`` first lets the thread empty that buffer.
    """

    def __init__(self, path: str | os.PathLike[str], iface: str = "lo", port: int | None = None) -> None:
        self.path, self.iface, self.port = path, iface, port
        self.count = 0
        self._socket: Any = None
        self._writer: Any = None
        self._sniffer: Any = None

    def _open_socket(self, libpcap: bool) -> Any:
        if not sys.platform.startswith("linux"):
            raise CaptureError(f"WireSniffer needs Linux packet sockets; on {sys.platform} run tshark or dumpcap")
        from scapy.arch.linux import L2ListenSocket, L2Socket
        from scapy.config import conf

        bpf = ("udp" if self.port is None else f"udp port {self.port}") if libpcap else None
        kind = L2Socket if _is_loopback(self.iface) else L2ListenSocket
        previous, conf.bufsize = conf.bufsize, max(conf.bufsize, BUFSIZE)
        try:
            return kind(iface=self.iface, filter=bpf)
        except PermissionError:
            raise CaptureError(
                f"capturing on {self.iface!r} needs a packet socket: run as root "
                "(or give the interpreter CAP_NET_RAW: setcap cap_net_raw+ep <python>)"
            ) from None
        except OSError as exc:
            raise CaptureError(f"cannot open a packet socket on {self.iface!r}: {exc}") from None
        finally:
            conf.bufsize = previous

    def _selects(self, packet: Any) -> bool:
        """The Python-side filter, used only when libpcap is not there to compile the BPF one."""
        from scapy.layers.inet import UDP

        udp = packet.getlayer(UDP)
        return udp is not None and (self.port is None or self.port in (udp.sport, udp.dport))

    def _write(self, packet: Any) -> None:
        self._writer.write(packet)
        self.count += 1

    def start(self) -> WireSniffer:
        from scapy.config import conf
        from scapy.layers import inet, inet6  # noqa: F401 - registers IP/IPv6/UDP so frames dissect
        from scapy.sendrecv import AsyncSniffer
        from scapy.utils import PcapWriter

        libpcap = have_libpcap()
        self._socket = self._open_socket(libpcap)
        try:
            self._writer = PcapWriter(
                os.fspath(self.path), linktype=conf.l2types.layer2num[self._socket.LL], sync=True, nano=True
            )
        except OSError:
            self._socket.close()
            raise
        started = threading.Event()
        self._sniffer = sniffer = AsyncSniffer(
            opened_socket=self._socket,
            store=False,
            prn=self._write,
            lfilter=None if libpcap else self._selects,
            started_callback=started.set,
        )
        sniffer.start()
        if not started.wait(5):
            self._close()
            raise CaptureError(f"the capture thread did not start: {sniffer.exception!r}")
        return self

    def stop(self, drain_timeout: float = 2.0) -> int:
        """Stop once the socket buffer is empty (or after ``drain_timeout``); returns the frames written."""
        sniffer = self._sniffer
        if sniffer is None:
            return self.count
        if sniffer.running:
            deadline = time.monotonic() + drain_timeout
            while select.select([self._socket.ins], [], [], 0)[0] and time.monotonic() < deadline:
                time.sleep(0.005)
            sniffer.stop()
        self._close()
        if sniffer.exception is not None:
            raise CaptureError(f"the capture thread failed: {sniffer.exception!r}") from sniffer.exception
        return self.count

    def _close(self) -> None:
        self._sniffer = None
        with contextlib.suppress(OSError):
            self._socket.close()
        self._writer.close()

    def __enter__(self) -> WireSniffer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
