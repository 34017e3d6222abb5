"""WireSniffer on the real loopback interface: each datagram exactly once, and clear errors when it cannot run."""

import os
import socket

import pytest
from scapy.layers.inet import UDP
from scapy.utils import rdpcap

from conformance.capture import CaptureError, WireSniffer
from conformance.capture import sniffer as sniffer_module

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="sniffing needs root (CAP_NET_RAW) for a packet socket")
N = 200


@needs_root
@pytest.mark.parametrize("bpf", [True, False], ids=["libpcap-bpf", "python-lfilter"])
@pytest.mark.parametrize(
    ("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")], ids=["ipv4", "ipv6"]
)
def test_each_datagram_on_lo_is_captured_exactly_once(tmp_path, monkeypatch, bpf, family, host):
    if bpf and not sniffer_module.have_libpcap():
        pytest.skip("libpcap not installed (apt-get install libpcap0.8)")
    monkeypatch.setattr(sniffer_module, "have_libpcap", lambda: bpf)
    with socket.socket(family, socket.SOCK_DGRAM) as rx, socket.socket(family, socket.SOCK_DGRAM) as tx:
        rx.bind((host, 0))
        rx.settimeout(2)
        port = rx.getsockname()[1]
        with socket.socket(family, socket.SOCK_DGRAM) as other:  # traffic on another port is left out
            other.bind((host, 0))
            with WireSniffer(tmp_path / "lo.pcap", port=port) as sniffer:
                for i in range(N):
                    tx.sendto(b"datagram %d" % i, (host, port))
                    tx.sendto(b"noise", other.getsockname())
                    assert rx.recv(100) == b"datagram %d" % i
            assert sniffer.count == N
    frames = rdpcap(str(tmp_path / "lo.pcap"))
    assert [bytes(f[UDP].payload) for f in frames] == [b"datagram %d" % i for i in range(N)]
    assert {f[UDP].dport for f in frames} == {port}


def test_missing_interface_is_a_capture_error(tmp_path):
    with pytest.raises(CaptureError, match="no network interface 'nosuch0'"):
        WireSniffer(tmp_path / "x.pcap", iface="nosuch0").start()
    assert not (tmp_path / "x.pcap").exists()


def test_without_privilege_the_error_says_run_as_root(tmp_path):
    """As root, a forked child drops to nobody first: the same unprivileged open, for real."""
    if os.geteuid() != 0:
        with pytest.raises(CaptureError, match="run as root"):
            WireSniffer(tmp_path / "x.pcap").start()
        return
    # Load everything start() imports while still root: nobody cannot read this interpreter's stdlib.
    sniffer_module.have_libpcap()
    WireSniffer(tmp_path / "warm.pcap", port=9).start().stop()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.setgid(65534)
            os.setuid(65534)
            WireSniffer(tmp_path / "x.pcap").start()
            message = "started"
        except CaptureError as exc:
            message = f"CaptureError: {exc}"
        except BaseException as exc:
            message = repr(exc)
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read().decode()
    os.waitpid(pid, 0)
    assert message.startswith("CaptureError: capturing on 'lo' needs a packet socket: run as root")
    assert not (tmp_path / "x.pcap").exists()
