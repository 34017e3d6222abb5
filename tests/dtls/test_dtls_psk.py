"""DTLS-PSK endpoints over real UDP sockets, and the key log checked in real tshark against the capture.

The key log is computed by the harness from the captured handshake (records.key_log_line); the proof that it
is right is that Wireshark, given it, decrypts the session's Finished messages and application data, and
that a key log for another PSK does not.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("mbedtls", reason="python-mbedtls has wheels for CPython 3.11 and 3.12 only")

from conformance.binding import load_binding
from conformance.capture.tap import PcapTap, TappedUdpSocket
from conformance.dtls.psk import DtlsPskClient, DtlsPskServer, parse_psk_identity, psk_identity
from conformance.dtls.records import describe_datagram, handshake_messages

BINDING = load_binding()
CIPHERS = BINDING["dtls.ciphers"]
KEY = bytes(range(32))
UE_ID, KEY_ID = "001010123456789", bytes.fromhex("0a0b0c0d")

needs_tshark = pytest.mark.skipif(
    shutil.which("tshark") is None, reason="tshark not installed (apt-get install tshark)"
)


@pytest.fixture
def server():
    asked: list[str] = []

    def lookup(identity: str) -> bytes | None:
        asked.append(identity)
        return KEY if parse_psk_identity(BINDING, identity) == (UE_ID, KEY_ID) else None

    srv = DtlsPskServer(lookup, ciphers=CIPHERS, on_data=lambda peer, data: data[::-1])
    srv.asked = asked
    srv.start()
    yield srv
    srv.stop()


def handshake(server, tap: PcapTap | None, identity: str, psk: bytes, timeout: float = 2.0):
    sock = TappedUdpSocket(tap) if tap else __import__("socket").socket(2, 2)
    client = DtlsPskClient(sock, server.address, identity, psk, ciphers=CIPHERS, timeout=timeout)
    return client, client.handshake()


def test_identity_round_trip_and_refusal_of_foreign_forms():
    identity = psk_identity(BINDING, UE_ID, KEY_ID)
    assert identity == "001010123456789:0a0b0c0d"
    assert parse_psk_identity(BINDING, identity) == (UE_ID, KEY_ID)
    for bad in ("001010123456789", "001010123456789:0a0b0c0", ":0a0b0c0d", "001010123456789;0a0b0c0d"):
        assert parse_psk_identity(BINDING, bad) is None, bad
    other = load_binding({"dtls.psk_identity": "key={key_id};ue={ue_id}"})
    assert parse_psk_identity(other, psk_identity(other, UE_ID, KEY_ID)) == (UE_ID, KEY_ID)


def test_handshake_with_the_right_key_completes_with_the_binding_suite(server):
    client, session = handshake(server, None, psk_identity(BINDING, UE_ID, KEY_ID), KEY)
    assert session.established, session.failure
    assert session.cipher == "TLS_PSK_WITH_AES_128_CCM_8" and session.version == "DTLSv1.2"
    assert server.asked == ["001010123456789:0a0b0c0d"]  # the PSK identity reached the server's lookup
    client.send(b"ping")
    assert client.receive(2.0) == b"gnip"
    names = [(sender, m.name) for sender, m in handshake_messages(session.datagrams)]
    assert names[:3] == [("client", "ClientHello"), ("server", "HelloVerifyRequest"), ("client", "ClientHello")]
    assert ("client", "ClientKeyExchange") in names


@pytest.mark.parametrize(
    ("identity", "psk"),
    [("001010123456789:0a0b0c0d", bytes(32)), ("001010123456789:ffffffff", KEY), ("no-separator", KEY)],
    ids=["wrong key", "unknown key id", "malformed identity"],
)
def test_handshake_fails_without_the_servers_key(server, identity, psk):
    _, session = handshake(server, None, identity, psk)
    assert not session.established and session.failure


def test_a_silent_peer_is_a_timeout_not_a_hang():
    import socket

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    client = DtlsPskClient(
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
        silent.getsockname(),
        "x:00",
        KEY,
        ciphers=CIPHERS,
        timeout=0.5,
    )
    session = client.handshake()
    assert not session.established and "within 0.5s" in session.failure
    silent.close()


def test_describe_datagram_names_records_and_flags_truncation(server):
    _, session = handshake(server, None, psk_identity(BINDING, UE_ID, KEY_ID), KEY)
    first = describe_datagram(session.datagrams[0][1])
    assert first["dtls"][0]["messages"] == ["ClientHello"] and "problem" not in first
    assert describe_datagram(session.datagrams[0][1][:20])["problem"].startswith("record at octet 0 claims")
    assert any(r.get("encrypted") for _, d in session.datagrams for r in describe_datagram(d)["dtls"])


def _tshark_finished_and_data(pcap: Path, port: int, keylog: Path) -> tuple[int, list[str]]:
    out = subprocess.run(
        ["tshark", "-r", str(pcap), "-d", f"udp.port=={port},dtls", "-o", f"tls.keylog_file:{keylog}",
         "-T", "fields", "-e", "dtls.handshake.type", "-e", "data.data"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    types = [t for line in out.splitlines() for t in line.split("\t")[0].split(",") if t]
    data = [line.split("\t")[1] for line in out.splitlines() if "\t" in line and line.split("\t")[1]]
    return types.count("20"), data


@needs_tshark
def test_tshark_decrypts_the_capture_with_the_computed_key_log(server, tmp_path):
    pcap = tmp_path / "dtls.pcap"
    with PcapTap(pcap) as tap:
        client, session = handshake(server, tap, psk_identity(BINDING, UE_ID, KEY_ID), KEY)
        assert session.established and session.key_log
        client.send(b"e2m probe")
        assert client.receive(2.0) == b"eborp m2e"
    keylog = tmp_path / "dtls.keys"
    keylog.write_text(session.key_log + "\n")
    finished, data = _tshark_finished_and_data(pcap, server.address[1], keylog)
    assert finished == 2  # both Finished messages decrypted: the master secret is the session's
    assert b"e2m probe".hex() in data and b"eborp m2e".hex() in data
    wrong = tmp_path / "wrong.keys"
    wrong.write_text(session.key_log[:-2] + ("00" if not session.key_log.endswith("00") else "11") + "\n")
    assert _tshark_finished_and_data(pcap, server.address[1], wrong) == (0, [])


def test_the_dtls_1_0_probe_tells_refusal_from_acceptance(server):
    """The reference refuses DTLS 1.0 (alert); the same hand-built hello for DTLS 1.2 is accepted, and a server
    that answers DTLS 1.0 (a raw responder, after a cookie round) is reported as accepting it."""
    import socket
    import threading

    from conformance.dtls.psk import DTLS_1_0, probe_version
    from conformance.dtls.records import hello_answer, parse_records

    assert probe_version(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), server.address) == "alert"
    assert probe_version(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), server.address, 0xFEFD) == "accepted"

    faulty = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    faulty.bind(("127.0.0.1", 0))

    def answer_dtls_1_0() -> None:
        for reply_type, body in ((3, b"\xfe\xff\x02ck"), (2, b"\xfe\xff" + bytes(32) + b"\x00\xc0\xa8\x00")):
            data, peer = faulty.recvfrom(2048)
            assert parse_records(data)[0][0].version == DTLS_1_0
            length = len(body).to_bytes(3, "big")
            message = bytes([reply_type]) + length + b"\x00\x00" + bytes(3) + length + body
            faulty.sendto(b"\x16\xfe\xff" + bytes(8) + len(message).to_bytes(2, "big") + message, peer)

    responder = threading.Thread(target=answer_dtls_1_0, daemon=True)
    responder.start()
    assert probe_version(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), faulty.getsockname()) == "accepted"
    responder.join(5)
    faulty.close()
    assert hello_answer(b"") == ("other", None)
