"""PcapTap / TappedUdpSocket / tap_datagram_protocol against real sockets, read back by scapy and tshark."""

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from conformance.capture import PcapTap, TappedUdpSocket, tap_datagram_protocol

FAMILIES = [pytest.param(socket.AF_INET, "127.0.0.1", id="ipv4"), pytest.param(socket.AF_INET6, "::1", id="ipv6")]


def ip_layer(frame):
    return frame[IP] if IP in frame else frame[IPv6]


def assert_rebuilds(frame):
    """scapy, recomputing every length and checksum, builds exactly the bytes the tap wrote."""
    ref = Ether(bytes(frame))
    if IP in ref:
        del ref[IP].len, ref[IP].chksum
    else:
        del ref[IPv6].plen
    del ref[UDP].len, ref[UDP].chksum
    assert bytes(ref) == bytes(frame)


def endpoints(frame):
    ip = ip_layer(frame)
    return (ip.src, frame[UDP].sport), (ip.dst, frame[UDP].dport)


@contextlib.contextmanager
def plain_echo(family, host):
    """An untapped UDP echo server in a thread; yields its address."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(0.02)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                data, peer = sock.recvfrom(65535)
                sock.sendto(data, peer)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield sock.getsockname()[:2]
    finally:
        stop.set()
        thread.join()
        sock.close()


@pytest.mark.parametrize(("family", "host"), FAMILIES)
def test_echo_exchange_is_recorded_in_order_with_real_addresses(tmp_path, family, host):
    payloads = [b"ping %d" % i * (i + 1) for i in range(5)]
    before = time.time()
    with plain_echo(family, host) as server, PcapTap(tmp_path / "x.pcap") as tap, TappedUdpSocket(tap, family) as s:
        s.settimeout(2)
        for payload in payloads:
            s.sendto(payload, server)  # the first send binds the socket implicitly
            assert s.recv(2048) == payload
        client = (host, s.getsockname()[1])  # bound to the wildcard: the tap records the address used
        assert tap.count == 10
    after = time.time()

    frames = rdpcap(str(tmp_path / "x.pcap"))
    assert len(frames) == 10
    for i, frame in enumerate(frames):
        sent = i % 2 == 0
        assert endpoints(frame) == ((client, server) if sent else (server, client))
        assert frame[Ether].src == ("02:00:00:00:00:01" if sent else "02:00:00:00:00:02")
        assert frame[Ether].dst == ("02:00:00:00:00:02" if sent else "02:00:00:00:00:01")
        assert bytes(frame[UDP].payload) == payloads[i // 2]
        assert_rebuilds(frame)
    times = [float(frame.time) for frame in frames]
    assert times == sorted(times)
    assert before <= times[0] and times[-1] <= after


@pytest.mark.parametrize(("family", "host"), FAMILIES)
def test_wildcard_bound_socket_records_the_address_the_kernel_used(tmp_path, family, host):
    with PcapTap(tmp_path / "x.pcap") as tap, TappedUdpSocket(tap, family) as server:
        server.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        port = server.getsockname()[1]
        with socket.socket(family, socket.SOCK_DGRAM) as client:
            client.sendto(b"hello", (host, port))
            data, peer = server.recvfrom(100)
            server.sendto(data, peer)
            assert client.recv(100) == b"hello"
            client_addr = (host, client.getsockname()[1])
    received, answered = rdpcap(str(tmp_path / "x.pcap"))
    assert endpoints(received) == (client_addr, (host, port))
    assert endpoints(answered) == ((host, port), client_addr)


def test_connected_socket_send_and_recv(tmp_path):
    with (
        plain_echo(socket.AF_INET, "127.0.0.1") as server,
        PcapTap(tmp_path / "x.pcap") as tap,
        TappedUdpSocket(tap) as s,
    ):
        s.connect(("localhost", server[1]))  # a host name: the tap records the address it resolved to
        s.settimeout(2)
        s.send(b"abc")
        assert s.recv(10) == b"abc"
        client = s.getsockname()  # connected, so the real local address
    sent, echoed = rdpcap(str(tmp_path / "x.pcap"))
    assert endpoints(sent) == (client, server)
    assert endpoints(echoed) == (server, client)


def test_recv_timeout_propagates_and_records_nothing(tmp_path):
    with PcapTap(tmp_path / "x.pcap") as tap, TappedUdpSocket(tap) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.05)
        assert s.gettimeout() == 0.05
        with pytest.raises(socket.timeout):
            s.recvfrom(100)
        with pytest.raises(TimeoutError):
            s.recv(100)
        assert tap.count == 0
    assert len(rdpcap(str(tmp_path / "x.pcap"))) == 0


def test_frames_survive_a_killed_process(tmp_path):
    path = tmp_path / "killed.pcap"
    script = (
        "import sys, time\n"
        "from conformance.capture import PcapTap\n"
        "tap = PcapTap(sys.argv[1])\n"
        "for i in range(37):\n"
        "    tap.record(b'frame %d' % i, ('10.0.0.1', 1000 + i), ('10.0.0.2', 2000))\n"
        "print('written', flush=True)\n"
        "time.sleep(60)\n"
    )
    with subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE) as child:
        assert child.stdout.readline() == b"written\n"
        child.send_signal(signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    frames = rdpcap(str(path))
    assert [bytes(f[UDP].payload) for f in frames] == [b"frame %d" % i for i in range(37)]


def test_two_threads_sharing_a_tap_write_intact_frames(tmp_path):
    def writer(tap, port):
        for i in range(1000):
            tap.record(b"%d:%d" % (port, i), ("127.0.0.1", port), ("127.0.0.1", 9))

    with PcapTap(tmp_path / "x.pcap") as tap:
        threads = [threading.Thread(target=writer, args=(tap, port)) for port in (1111, 2222)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert tap.count == 2000
    frames = rdpcap(str(tmp_path / "x.pcap"))
    assert len(frames) == 2000
    for port in (1111, 2222):
        mine = [bytes(f[UDP].payload) for f in frames if f[UDP].sport == port]
        assert mine == [b"%d:%d" % (port, i) for i in range(1000)]
    for frame in frames[::97]:
        assert_rebuilds(frame)
    times = [frame.time for frame in frames]
    assert times == sorted(times)


@given(
    payload=st.binary(max_size=1472),
    sport=st.integers(0, 65535),
    dport=st.integers(0, 65535),
    ipv6=st.booleans(),
    src_byte=st.integers(1, 254),
)
def test_any_payload_and_ports_round_trip_byte_identical(payload, sport, dport, ipv6, src_byte):
    src = (f"2001:db8::{src_byte:x}" if ipv6 else f"192.0.2.{src_byte}", sport)
    dst = ("fe80::1" if ipv6 else "198.51.100.7", dport)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x.pcap")
        with PcapTap(path) as tap:
            tap.record(payload, src, dst, timestamp=1700000000.123456789)
        (frame,) = rdpcap(path)
    assert bytes(frame[UDP].payload) == payload
    assert endpoints(frame) == (src, dst)
    assert_rebuilds(frame)
    assert abs(float(frame.time) - 1700000000.123456789) < 1e-6


def word_sum(data):
    return sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))


def test_checksums_at_the_ones_complement_zero(tmp_path):
    """A UDP sum of 0xFFFF goes out as checksum 0xFFFF (RFC 768), an IP header sum of 0xFFFF as 0 (RFC 1071)."""
    # First IP header (id 0, 2-byte payload): choose the destination's last 16 bits so the header sums to 0xFFFF.
    header = bytes.fromhex("4500001e00004000401100000a000001c6330000")
    last = -word_sum(header) % 0xFFFF
    dst = f"198.51.{last >> 8}.{last & 0xFF}"
    # Then choose the 2-byte payload so the UDP pseudo header + header + payload sum to 0xFFFF too.
    pseudo_and_udp = header[12:16] + socket.inet_aton(dst) + bytes.fromhex("0011000a" + "0457045a000a0000")
    payload = (-word_sum(pseudo_and_udp) % 0xFFFF).to_bytes(2, "big")
    with PcapTap(tmp_path / "x.pcap") as tap:
        tap.record(payload, ("10.0.0.1", 1111), (dst, 1114))
    (frame,) = rdpcap(str(tmp_path / "x.pcap"))
    assert frame[IP].chksum == 0
    assert frame[UDP].chksum == 0xFFFF
    assert_rebuilds(frame)


def test_close_is_idempotent(tmp_path):
    tap = PcapTap(tmp_path / "x.pcap")
    tap.record(b"x", ("127.0.0.1", 1), ("127.0.0.1", 2))
    tap.close()
    tap.close()
    assert tap.count == 1
    with pytest.raises(ValueError):
        tap.record(b"y", ("127.0.0.1", 1), ("127.0.0.1", 2))


def test_asyncio_datagram_protocol_is_recorded(tmp_path):
    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.transport.sendto(data.upper(), addr)

    class Client(asyncio.DatagramProtocol):
        def __init__(self):
            self.answer = asyncio.get_running_loop().create_future()

        def datagram_received(self, data, addr):
            self.answer.set_result(data)

    async def exchange(tap):
        loop = asyncio.get_running_loop()
        server, protocol = await loop.create_datagram_endpoint(
            tap_datagram_protocol(Echo, tap), local_addr=("127.0.0.1", 0)
        )
        assert isinstance(protocol, Echo)
        address = server.get_extra_info("sockname")
        client, waiter = await loop.create_datagram_endpoint(Client, remote_addr=address)
        client.sendto(b"hello")
        assert await asyncio.wait_for(waiter.answer, 2) == b"HELLO"
        peer = client.get_extra_info("sockname")
        client.close()
        server.close()
        return address, peer

    with PcapTap(tmp_path / "x.pcap") as tap:
        server, client = asyncio.run(exchange(tap))
    received, answered = rdpcap(str(tmp_path / "x.pcap"))
    assert endpoints(received) == (client, server)
    assert bytes(received[UDP].payload) == b"hello"
    assert endpoints(answered) == (server, client)
    assert bytes(answered[UDP].payload) == b"HELLO"


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed (apt-get install tshark)")
def test_tshark_reads_the_tap_with_good_checksums(tmp_path):
    path = tmp_path / "x.pcap"
    records = [
        (b"", ("127.0.0.1", 40000), ("127.0.0.2", 4000)),
        (b"\x00" * 7, ("192.0.2.1", 1), ("198.51.100.2", 65535)),
        (os.urandom(1472), ("127.0.0.1", 4000), ("127.0.0.1", 40000)),
        (b"v6", ("::1", 5000), ("::1", 6000)),
        (os.urandom(999), ("2001:db8::1", 65535), ("fe80::2", 0)),
    ]
    with PcapTap(path) as tap:
        for record in records:
            tap.record(*record)
    fields = ["ip.src", "ipv6.src", "ip.dst", "ipv6.dst", "udp.srcport", "udp.dstport"]
    fields += ["ip.checksum.status", "udp.checksum.status", "_ws.expert"]
    out = subprocess.run(
        ["tshark", "-r", str(path), "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"]
        + ["-Y", 'udp.checksum.status == "Good" && !(ip.checksum.status == "Bad")', "-T", "fields"]
        + [arg for field in fields for arg in ("-e", field)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert len(out) == len(records)  # every frame passed the "Good" filter
    for line, (_, src, dst) in zip(out, records, strict=True):
        ip_src, ip6_src, ip_dst, ip6_dst, sport, dport, ip_status, udp_status, expert = line.split("\t")
        assert (ip_src or ip6_src, int(sport)) == src
        assert (ip_dst or ip6_dst, int(dport)) == dst
        assert ip_status == ("" if ":" in src[0] else "1")  # 1 = PROTO_CHECKSUM_E_GOOD, shown as "Good"
        assert udp_status == "1"
        assert expert == ""


@given(
    records=st.lists(
        st.tuples(st.binary(max_size=64), st.integers(1, 65535), st.integers(1, 65535), st.booleans()),
        min_size=1,
        max_size=6,
    ),
    port=st.sampled_from([None, 4000]),
)
def test_the_taps_own_datagrams_are_what_reading_its_file_gives(records, port):
    """A case's trace comes from the tap's records (`datagrams`), not from reading its pcap back: the two agree
    on frame numbers, addresses (IPv6 as a reader shows them), ports, payloads and, to the µs, times."""
    from conformance.capture.reader import udp_datagrams

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "x.pcap")
        with PcapTap(path) as tap:
            for n, (payload, sport, dport, ipv6) in enumerate(records):
                src, dst = ("2001:0db8:0:0::1", sport) if ipv6 else ("192.0.2.1", sport), ("127.0.0.1", dport)
                if ipv6:
                    dst = ("::1", dport)
                tap.record(payload, src, dst, timestamp=1700000000.25 + n / 7)
        own, read = list(tap.datagrams(port)), list(udp_datagrams(path, port))
    assert [(n, s, d, p) for n, _, s, d, p in own] == [(n, s, d, p) for n, _, s, d, p in read]
    assert all(abs(a[1] - b[1]) < 1e-6 for a, b in zip(own, read, strict=True))
