"""Record every UDP datagram the harness sends or receives into a classic pcap file.

The tap sits in the latency path of every exchange, so it builds the 42-byte (IPv4) or 62-byte (IPv6)
Ether/IP/UDP headers itself with ``struct`` and writes each record with one ``write()``. Measured on the
project machine (median over 20,000 records of a 60-byte payload): scapy's ``Ether()/IP()/UDP()/Raw`` into
``PcapWriter`` costs about 730 µs a record, :meth:`PcapTap.record` about 5.5 µs (3.3 µs the frame, 1.2 µs the
write). scapy's ``utils.checksum`` would add 1.3 µs a frame over the one-``%`` checksum below, and
``RawPcapWriter(sync=True)`` about 2.5 µs, in two unbuffered writes a record (torn in two if the process dies
between them), so the 24-byte global header and 16-byte record headers are written here too. The frames are
checked by reading them back with scapy, which rebuilds them byte for byte, and with tshark's checksum validation.

File format: classic pcap, little-endian, nanosecond timestamps (magic 0xa1b23c4d), linktype 1 (Ethernet).
"""

from __future__ import annotations

import functools
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from conformance.capture.reader import Datagram

Address = tuple[Any, ...]  # (host, port) or an AF_INET6 (host, port, flowinfo, scope_id)

_GLOBAL_HEADER = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1)
_RECORD = struct.Struct("<IIII")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_UDP = struct.Struct("!HHHH")
_WILDCARDS = frozenset({"0.0.0.0", "::"})


# SO_TIMESTAMPNS: the kernel stamps each received datagram with its arrival time (CLOCK_REALTIME, ns), handed
# over as ancillary data by recvmsg. Python's socket module does not name it; 35 is its value on Linux.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform.startswith("linux") else None)
_TIMESPEC = struct.Struct("@qq")
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0


def enable_receive_timestamps(sock: socket.socket) -> bool:
    """Ask the kernel to stamp every datagram ``sock`` receives with its arrival time; False where it cannot."""
    if SO_TIMESTAMPNS is None or not _ANCILLARY:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def recv_stamped(sock: socket.socket, bufsize: int, stamped: bool = True) -> tuple[bytes, Address, int]:
    """(data, peer, arrival) of the next datagram: arrival in ns since the epoch, the kernel's stamp when
    ``stamped`` (see :func:`enable_receive_timestamps`), else the time it is read. Costs about 0.8 µs more than
    ``recvfrom`` (recvmsg and one cmsg), measured on the project machine."""
    if not stamped:
        data, peer = sock.recvfrom(bufsize)
        return data, peer, time.time_ns()
    data, ancillary, _, peer = sock.recvmsg(bufsize, _ANCILLARY)
    for level, kind, value in ancillary:
        if kind == SO_TIMESTAMPNS and level == socket.SOL_SOCKET and len(value) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(value)
            return data, peer, seconds * 1_000_000_000 + nanoseconds
    return data, peer, time.time_ns()


def _checksum(words: int) -> int:
    """RFC 1071 checksum of data read as one big-endian integer, in 1..0xFFFF (the UDP form: 0 goes as 0xFFFF).

    2**16 is 1 modulo 0xFFFF, so the ones' complement sum of the 16-bit words is the integer modulo 0xFFFF
    (0 standing for 0xFFFF): one C-speed ``%`` instead of a Python loop over the words.
    """
    return 0xFFFF - words % 0xFFFF


def _ip_bytes(host: str) -> bytes:
    """Packed address; IPv6 when the text has a ':' (a '%scope' suffix is dropped)."""
    if ":" in host:
        return socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
    return socket.inet_pton(socket.AF_INET, host)


@functools.lru_cache(maxsize=1024)
def _ip_text(host: str) -> str:
    """The address as a capture reader shows it (the frame holds it packed: no '%scope', IPv6 compressed)."""
    packed = _ip_bytes(host)
    return socket.inet_ntop(socket.AF_INET6 if len(packed) == 16 else socket.AF_INET, packed)


@functools.lru_cache(maxsize=1024)
def _source_for(peer_host: str) -> str:
    """The source address the kernel routes to ``peer_host`` from: a connected UDP socket's local address."""
    with socket.socket(socket.AF_INET6 if ":" in peer_host else socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((peer_host, 9))
        return probe.getsockname()[0]


@functools.lru_cache(maxsize=1024)
def _resolve(family: int, host: str, port: int) -> Address:
    """The address ``sendto`` really uses for ``(host, port)`` (the same ``getaddrinfo`` lookup Python does)."""
    return socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)[0][4]


def _real_local(local: Address, peer: Address) -> tuple[str, int]:
    """``local`` with a wildcard address (0.0.0.0, ::) replaced by the source the kernel uses towards ``peer``.

    For a received datagram that is the address an answer would leave from, which is its destination except
    on a multi-homed host with asymmetric routes (recvmsg + IP_PKTINFO would tell exactly, at a cost per packet).
    """
    if local[0] in _WILDCARDS:
        return _source_for(peer[0]), local[1]
    return local[0], local[1]


class PcapTap:
    """A pcap file that frames are appended to, one flushed ``write()`` each, so a killed run keeps them all.

    Ethernet addresses are locally administered, 02:00:00:00:00:01, :02, ... in the order endpoints
    ``(ip, port)`` first appear, so Ethernet conversations in Wireshark match the UDP ones.
    ``lock`` is reentrant: a tapped socket holds it across its send syscall and the record, so a peer's
    receive, recorded by another thread, cannot come before the send in the file. When both ends of an
    exchange are tapped into one file, each datagram is in it twice (sent and received), as on ``lo``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self.count = 0
        self.lock = threading.RLock()
        self._macs: dict[tuple[str, int], bytes] = {}
        self._written: list[tuple[int, bytes, Address, Address]] = []  # (ns, payload, src, dst) of each frame
        self._file = open(path, "wb", buffering=0)  # noqa: SIM115 - lives as long as the tap
        self._file.write(_GLOBAL_HEADER)

    def _mac(self, endpoint: Address) -> bytes:
        key = (endpoint[0], endpoint[1])
        mac = self._macs.get(key)
        if mac is None:
            mac = self._macs[key] = b"\x02\x00" + (len(self._macs) + 1).to_bytes(4, "big")
        return mac

    def _frame(self, payload: bytes, src: Address, dst: Address) -> bytes:
        s, d = _ip_bytes(src[0]), _ip_bytes(dst[0])
        if len(s) != len(d):
            raise ValueError(f"{src[0]} and {dst[0]} are not of one address family")
        length = 8 + len(payload)
        udp = _UDP.pack(src[1], dst[1], length, 0)
        if len(s) == 4:
            ip = _IPV4.pack(0x45, 0, 20 + length, self.count & 0xFFFF, 0x4000, 64, 17, 0, s, d)
            ip = ip[:10] + (_checksum(int.from_bytes(ip, "big")) % 0xFFFF).to_bytes(2, "big") + ip[12:]
            pseudo, ethertype = s + d + struct.pack("!HH", 17, length), b"\x08\x00"
        else:
            ip = _IPV6.pack(0x60000000, length, 17, 64, s, d)
            pseudo, ethertype = s + d + struct.pack("!I3xB", length, 17), b"\x86\xdd"
        # pseudo + udp is a whole number of 16-bit words, so the payload's words (zero-padded) just add on.
        words = int.from_bytes(pseudo + udp, "big") + (int.from_bytes(payload, "big") << (8 * (length & 1)))
        checksum = _checksum(words).to_bytes(2, "big")
        src_mac = self._mac(src)  # first, so the first sender is 02:00:00:00:00:01
        return self._mac(dst) + src_mac + ethertype + ip + udp[:6] + checksum + payload

    def record(
        self, payload: bytes, src: Address, dst: Address, timestamp: float | None = None, *, ns: int | None = None
    ) -> None:
        """Append Ether/IP/UDP/payload from ``src`` to ``dst``, stamped ``ns`` (ns since the epoch, exact) or
        ``timestamp`` (seconds since the epoch) or now."""
        payload = bytes(payload)
        with self.lock:
            frame = self._frame(payload, src, dst)
            if ns is None:
                ns = time.time_ns() if timestamp is None else round(timestamp * 1e9)
            self._file.write(_RECORD.pack(ns // 1_000_000_000, ns % 1_000_000_000, len(frame), len(frame)) + frame)
            self._written.append((ns, payload, src, dst))
            self.count += 1

    def datagrams(self, port: int | None = None) -> Iterator[Datagram]:
        """What `reader.udp_datagrams` reads back from this tap's file, without reading it: (frame number, time,
        source, destination, payload) of each datagram recorded so far, to or from `port` if given. A case's
        trace comes from here: the file holds the same frames, built from the same records."""
        for number, (ns, payload, src, dst) in enumerate(self._written, 1):
            if port is None or port in (src[1], dst[1]):
                yield number, ns / 1e9, (_ip_text(src[0]), src[1]), (_ip_text(dst[0]), dst[1]), payload

    def close(self) -> None:
        with self.lock:
            self._file.close()

    def __enter__(self) -> PcapTap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TappedUdpSocket:
    """A UDP socket whose every datagram, sent or received, is recorded with the real local and peer address.

    Wraps ``sock`` or a new ``socket.socket(family, SOCK_DGRAM)``. A wildcard local address is recorded as
    the source the kernel routes towards the peer (see :func:`_real_local`). ``sock`` stays reachable for
    socket options; datagrams sent or received through it directly are not recorded.
    """

    def __init__(self, tap: PcapTap, family: int = socket.AF_INET, sock: socket.socket | None = None) -> None:
        self.tap = tap
        self.sock = sock if sock is not None else socket.socket(family, socket.SOCK_DGRAM)
        self._local: Address | None = None
        self._peer: Address | None = None

    def _local_towards(self, peer: Address) -> tuple[str, int]:
        if self._local is None or self._local[1] == 0:  # unbound until the first send binds it implicitly
            self._local = self.sock.getsockname()
        return _real_local(self._local, peer)

    def bind(self, address: Address) -> None:
        self.sock.bind(address)
        self._local = None

    def connect(self, address: Address) -> None:
        self.sock.connect(address)
        self._local, self._peer = None, self.sock.getpeername()

    def sendto(self, data: bytes, address: Address) -> int:
        peer = _resolve(self.sock.family, address[0], address[1])
        with self.tap.lock:
            ns = time.time_ns()  # as it leaves: after the syscall, other threads may have run (and answered) first
            sent = self.sock.sendto(data, address)
            self.tap.record(data, self._local_towards(peer), peer, ns=ns)
        return sent

    def send(self, data: bytes) -> int:
        with self.tap.lock:
            ns = time.time_ns()
            sent = self.sock.send(data)
            self.tap.record(data, self._local_towards(self._peer), self._peer, ns=ns)
        return sent

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Address]:
        data, peer = self.sock.recvfrom(bufsize, flags)
        if not flags & socket.MSG_PEEK:  # a peeked datagram is recorded when it is really read
            self.tap.record(data, peer, self._local_towards(peer))
        return data, peer

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return self.recvfrom(bufsize, flags)[0]

    def recvfrom_stamped(self, bufsize: int, stamped: bool = True) -> tuple[bytes, Address, int]:
        """As :func:`recv_stamped`; the datagram is recorded with its arrival time, so the pcap says when it
        arrived, not when the harness read it."""
        data, peer, arrival = recv_stamped(self.sock, bufsize, stamped)
        self.tap.record(data, peer, self._local_towards(peer), ns=arrival)
        return data, peer, arrival

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self.sock.gettimeout()

    def getsockname(self) -> Address:
        return self.sock.getsockname()

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> TappedUdpSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _TappedTransport:
    """An asyncio datagram transport whose ``sendto`` is recorded; everything else is the wrapped transport."""

    def __init__(self, transport: Any, tap: PcapTap) -> None:
        self._transport, self._tap = transport, tap

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def local_towards(self, peer: Address) -> tuple[str, int]:
        return _real_local(self._transport.get_extra_info("sockname"), peer)

    def sendto(self, data: bytes, addr: Address | None = None) -> None:
        sock = self._transport.get_extra_info("socket")
        peer = self._transport.get_extra_info("peername") if addr is None else _resolve(sock.family, *addr[:2])
        with self._tap.lock:
            ns = time.time_ns()
            self._transport.sendto(data, addr)
            self._tap.record(data, self.local_towards(peer), peer, ns=ns)


def tap_datagram_protocol(protocol_factory: Callable[[], Any], tap: PcapTap) -> Callable[[], Any]:
    """A protocol factory for ``loop.create_datagram_endpoint`` whose protocols' traffic is recorded.

    The protocol is the caller's own object: its ``connection_made`` gets a transport whose ``sendto``
    records, and its ``datagram_received`` records before handling.
    """

    def factory() -> Any:
        protocol = protocol_factory()
        made, received = protocol.connection_made, protocol.datagram_received
        tapped: _TappedTransport | None = None

        def connection_made(transport: Any) -> None:
            nonlocal tapped
            tapped = _TappedTransport(transport, tap)
            made(tapped)

        def datagram_received(data: bytes, addr: Address) -> None:
            tap.record(data, addr, tapped.local_towards(addr))
            received(data, addr)

        protocol.connection_made, protocol.datagram_received = connection_made, datagram_received
        return protocol

    return factory
