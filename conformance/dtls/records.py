"""DTLS records as captured: a readable trace of each datagram, and the NSS key log that lets Wireshark
decrypt a PSK session the harness took part in.

Wireshark decrypts (D)TLS 1.2 from a `CLIENT_RANDOM <client random> <master secret>` line. The harness knows
the PSK it offered, and the handshake before ChangeCipherSpec is plaintext on the wire, so the master secret
is computed here from the captured handshake alone (RFC 4279 2 premaster, RFC 5246 8.1 PRF, RFC 7627 when the
server accepted the extended master secret) — no hook into the DTLS library is needed, and the key log is
checked against the capture it was computed from.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from conformance.capture.reader import Datagram, udp_datagrams

CONTENT_TYPES = {20: "change_cipher_spec", 21: "alert", 22: "handshake", 23: "application_data"}
HANDSHAKE_TYPES = {
    0: "HelloRequest",
    1: "ClientHello",
    2: "ServerHello",
    3: "HelloVerifyRequest",
    4: "NewSessionTicket",
    11: "Certificate",
    12: "ServerKeyExchange",
    13: "CertificateRequest",
    14: "ServerHelloDone",
    15: "CertificateVerify",
    16: "ClientKeyExchange",
    20: "Finished",
}
VERSIONS = {0xFEFF: "DTLS 1.0", 0xFEFD: "DTLS 1.2"}
EXTENDED_MASTER_SECRET = 0x0017


@dataclass(frozen=True)
class Record:
    content_type: int
    version: int
    epoch: int
    sequence: int
    fragment: bytes

    @property
    def kind(self) -> str:
        return CONTENT_TYPES.get(self.content_type, f"type {self.content_type}")


def parse_records(datagram: bytes) -> tuple[list[Record], str | None]:
    """The DTLS records of one datagram (RFC 6347 4.1: 13-octet header), and a problem if it does not parse."""
    records, offset = [], 0
    while offset < len(datagram):
        header = datagram[offset : offset + 13]
        if len(header) < 13:
            return records, f"truncated record header at octet {offset}"
        length = int.from_bytes(header[11:13], "big")
        fragment = datagram[offset + 13 : offset + 13 + length]
        if len(fragment) < length:
            return records, f"record at octet {offset} claims {length} octets, {len(fragment)} present"
        records.append(
            Record(
                header[0],
                int.from_bytes(header[1:3], "big"),
                int.from_bytes(header[3:5], "big"),
                int.from_bytes(header[5:11], "big"),
                fragment,
            )
        )
        offset += 13 + length
    return records, None


@dataclass(frozen=True)
class HandshakeMessage:
    msg_type: int
    message_seq: int
    body: bytes

    @property
    def name(self) -> str:
        return HANDSHAKE_TYPES.get(self.msg_type, f"handshake type {self.msg_type}")

    def hashed(self) -> bytes:
        """The message as the handshake hash takes it: one unfragmented DTLS handshake message (RFC 6347 4.2.6)."""
        length = len(self.body).to_bytes(3, "big")
        return bytes([self.msg_type]) + length + self.message_seq.to_bytes(2, "big") + bytes(3) + length + self.body


def handshake_fragments(record: Record) -> list[tuple[int, int, int, int, bytes]]:
    """(type, total length, message_seq, fragment offset, fragment) of each handshake fragment of a plaintext
    (epoch 0) handshake record; none for an encrypted one."""
    if record.content_type != 22 or record.epoch != 0:
        return []
    out, data = [], record.fragment
    while len(data) >= 12:
        length = int.from_bytes(data[1:4], "big")
        seq = int.from_bytes(data[4:6], "big")
        offset = int.from_bytes(data[6:9], "big")
        frag_len = int.from_bytes(data[9:12], "big")
        out.append((data[0], length, seq, offset, data[12 : 12 + frag_len]))
        data = data[12 + frag_len :]
    return out


def describe_datagram(datagram: bytes) -> dict[str, object]:
    """A JSON-ready view of one DTLS datagram: each record's type, version, epoch and, for plaintext
    handshake records, the message names; encrypted content is only sized."""
    records, problem = parse_records(datagram)
    view: list[dict[str, object]] = []
    for record in records:
        item: dict[str, object] = {
            "record": record.kind,
            "version": VERSIONS.get(record.version, hex(record.version)),
            "epoch": record.epoch,
            "length": len(record.fragment),
        }
        fragments = handshake_fragments(record)
        if fragments:
            item["messages"] = [HANDSHAKE_TYPES.get(f[0], str(f[0])) for f in fragments]
        elif record.content_type == 21 and record.epoch == 0 and len(record.fragment) == 2:
            item["alert"] = {"level": record.fragment[0], "description": record.fragment[1]}
        elif record.epoch:
            item["encrypted"] = True
        view.append(item)
    out: dict[str, object] = {"dtls": view}
    if problem:
        out["problem"] = problem
    return out


def handshake_messages(datagrams: list[tuple[str, bytes]]) -> list[tuple[str, HandshakeMessage]]:
    """The plaintext handshake messages of one session in the order first seen, reassembled and without
    retransmissions: datagrams are (sender, octets) with sender 'client' or 'server'."""
    parts: dict[tuple[str, int], dict[int, bytes]] = {}
    meta: dict[tuple[str, int], tuple[int, int]] = {}
    order: list[tuple[str, int]] = []
    for sender, datagram in datagrams:
        for record in parse_records(datagram)[0]:
            for msg_type, length, seq, offset, fragment in handshake_fragments(record):
                key = (sender, seq)
                if key not in meta:
                    meta[key] = (msg_type, length)
                    order.append(key)
                parts.setdefault(key, {})[offset] = fragment
    messages = []
    for key in order:
        msg_type, length = meta[key]
        body = bytearray(length)
        for offset, fragment in parts[key].items():
            body[offset : offset + len(fragment)] = fragment
        messages.append((key[0], HandshakeMessage(msg_type, key[1], bytes(body))))
    return messages


def _prf(secret: bytes, label: bytes, seed: bytes, size: int) -> bytes:
    """TLS 1.2 PRF with SHA-256 (RFC 5246 5): the PRF of every PSK suite the binding may name."""
    out, a = b"", label + seed
    while len(out) < size:
        a = hmac.new(secret, a, hashlib.sha256).digest()
        out += hmac.new(secret, a + label + seed, hashlib.sha256).digest()
    return out[:size]


def _extensions(hello_body: bytes) -> set[int]:
    """Extension types of a ServerHello body (version 2, random 32, session id, suite 2, compression 1)."""
    at = 34 + 1 + hello_body[34] + 3
    if at + 2 > len(hello_body):
        return set()
    end, at, found = at + 2 + int.from_bytes(hello_body[at : at + 2], "big"), at + 2, set()
    while at + 4 <= min(end, len(hello_body)):
        found.add(int.from_bytes(hello_body[at : at + 2], "big"))
        at += 4 + int.from_bytes(hello_body[at + 2 : at + 4], "big")
    return found


class KeyLogError(ValueError):
    """The captured handshake is not complete enough to compute the master secret."""


def key_log_line(datagrams: list[tuple[str, bytes]], psk: bytes) -> str:
    """The NSS key log line of a PSK handshake from its captured datagrams and the PSK."""
    messages = handshake_messages(datagrams)
    names = [(sender, m.name) for sender, m in messages]
    if ("server", "HelloVerifyRequest") in names:  # RFC 6347 4.2.1: the first ClientHello and HVR are not hashed
        first_hello = next(i for i, (s, n) in enumerate(names) if (s, n) == ("client", "ClientHello"))
        messages = [m for i, m in enumerate(messages) if i != first_hello and m[1].name != "HelloVerifyRequest"]
    hellos = {(s, m.name): m for s, m in messages if m.name in ("ClientHello", "ServerHello")}
    client_hello, server_hello = hellos.get(("client", "ClientHello")), hellos.get(("server", "ServerHello"))
    exchange = next((i for i, (s, m) in enumerate(messages) if m.name == "ClientKeyExchange"), None)
    if client_hello is None or server_hello is None or exchange is None:
        raise KeyLogError(f"handshake incomplete: saw {[n for _, n in names] or 'nothing'}")
    n = len(psk)
    premaster = n.to_bytes(2, "big") + bytes(n) + n.to_bytes(2, "big") + psk  # RFC 4279 2
    client_random, server_random = client_hello.body[2:34], server_hello.body[2:34]
    if EXTENDED_MASTER_SECRET in _extensions(server_hello.body):
        session_hash = hashlib.sha256(b"".join(m.hashed() for _, m in messages[: exchange + 1])).digest()
        master = _prf(premaster, b"extended master secret", session_hash, 48)
    else:
        master = _prf(premaster, b"master secret", client_random + server_random, 48)
    return f"CLIENT_RANDOM {client_random.hex()} {master.hex()}"


def read_dtls_trace(path: str | Path, port: int | None = None) -> list[dict[str, object]]:
    """Every UDP datagram of a capture (to or from `port` if given) as DTLS, in the trace's common form."""
    return dtls_trace(udp_datagrams(path, port))


def dtls_trace(datagrams: Iterable[Datagram]) -> list[dict[str, object]]:
    """The datagrams (as `udp_datagrams` gives them, e.g. a live tap's) as DTLS, in the trace's common form."""
    return [
        {"frame": n, "time": t, "src": f"{src[0]}:{src[1]}", "dst": f"{dst[0]}:{dst[1]}", **describe_datagram(data)}
        for n, t, src, dst, data in datagrams
    ]


def client_hello(version: int, suites: list[int], cookie: bytes = b"", message_seq: int = 0) -> bytes:
    """One DTLS record holding a ClientHello offering `version` only, no extensions: a probe, so it is built
    here rather than by a DTLS library that would not offer an obsolete version at all."""
    body = (
        version.to_bytes(2, "big")
        + os.urandom(32)
        + b"\x00"
        + bytes([len(cookie)])
        + cookie
        + (2 * len(suites)).to_bytes(2, "big")
        + b"".join(s.to_bytes(2, "big") for s in suites)
        + b"\x01\x00"
    )
    length = len(body).to_bytes(3, "big")
    handshake = b"\x01" + length + message_seq.to_bytes(2, "big") + bytes(3) + length + body
    return (
        bytes([22])
        + version.to_bytes(2, "big")
        + bytes(2)
        + message_seq.to_bytes(6, "big")
        + (len(handshake).to_bytes(2, "big") + handshake)
    )


def hello_answer(datagram: bytes) -> tuple[str, bytes | int | None]:
    """What a server answered a ClientHello with: ('cookie', cookie), ('server_hello', version),
    ('alert', description) or ('other', None)."""
    for record in parse_records(datagram)[0]:
        for msg_type, _length, _seq, _offset, body in handshake_fragments(record):
            if msg_type == 3 and len(body) >= 3:
                return "cookie", body[3 : 3 + body[2]]
            if msg_type == 2 and len(body) >= 2:
                return "server_hello", int.from_bytes(body[:2], "big")
        if record.content_type == 21 and len(record.fragment) == 2:
            return "alert", record.fragment[1]
    return "other", None
