"""DTLS 1.2 PSK endpoints on python-mbedtls, driven sans-IO: the harness owns every UDP socket, so each
datagram passes the capture tap and is kept for the key log (`records.key_log_line`).

The PSK identity carries the UE identity and the key identifier (seed 002 6.x.2.3 step 4); its encoding is
the binding's `dtls.psk_identity` template. Cipher suites are named as IANA does (the binding's
`dtls.ciphers`, e.g. TLS_PSK_WITH_AES_128_CCM_8) and mapped to mbed TLS names here.

A DTLS peer that cannot decrypt a record drops it silently (RFC 6347 4.1.2.7), so a wrong PSK shows as
silence, not an alert: every wait has a deadline, and none of them raises when it passes. A handshake that does
not complete returns its `Session` with `established` false and `failure` saying why (`timed_out` set when the
server fell silent); `DtlsPskClient.receive` returns None when no record arrives in time; `probe_version`
answers 'silence'.
"""

from __future__ import annotations

import re
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mbedtls import tls
from mbedtls.exceptions import TLSError

from conformance.dtls.records import KeyLogError, key_log_line

VERSIONS = {"DTLSv1.0": tls.DTLSVersion.DTLSv1_0, "DTLSv1.2": tls.DTLSVersion.DTLSv1_2}
Address = tuple[str, int]
MAX_DATAGRAM = 65535  # the largest UDP payload


def mbedtls_cipher(name: str) -> str:
    """mbed TLS's name of an IANA cipher-suite name; ValueError if the library does not offer it."""
    converted = name.replace("_", "-")
    if converted not in tls.ciphers_available():
        raise ValueError(f"cipher suite {name} is not available in the DTLS library (mbed TLS)")
    return converted


def psk_identity(binding: Mapping[str, Any], ue_id: str, key_id: bytes) -> str:
    return binding["dtls.psk_identity"].format(ue_id=ue_id, key_id=key_id.hex())


def parse_psk_identity(binding: Mapping[str, Any], identity: str) -> tuple[str, bytes] | None:
    """(UE id, key id) from a PSK identity built by the binding's template, or None if it does not match."""
    pattern = "".join(
        {"{ue_id}": r"(?P<ue_id>.+?)", "{key_id}": r"(?P<key_id>(?:[0-9a-fA-F]{2})+)"}.get(part, re.escape(part))
        for part in re.split(r"(\{ue_id\}|\{key_id\})", binding["dtls.psk_identity"])
    )
    match = re.fullmatch(pattern, identity)
    return (match["ue_id"], bytes.fromhex(match["key_id"])) if match else None


@dataclass
class Session:
    """One finished (or failed) handshake, as the harness saw it."""

    established: bool
    cipher: str | None = None
    version: str | None = None
    failure: str | None = None
    timed_out: bool = False  # the server stopped answering before the handshake ended (no alert)
    datagrams: list[tuple[str, bytes]] = field(default_factory=list)  # (client|server, octets), in order
    key_log: str | None = None


def _configuration(ciphers: list[str], low: str, high: str, timeout: float, **psk: Any) -> tls.DTLSConfiguration:
    return tls.DTLSConfiguration(
        ciphers=[mbedtls_cipher(c) for c in ciphers],
        lowest_supported_version=VERSIONS[low],
        highest_supported_version=VERSIONS[high],
        validate_certificates=False,  # PSK suites carry no certificate
        handshake_timeout_min=min(1.0, timeout),
        handshake_timeout_max=timeout,
        **psk,
    )


def _flush(buffer: Any, send: Callable[[bytes], Any], record: Callable[[bytes], None] | None = None) -> None:
    while outgoing := buffer.peek_outgoing(MAX_DATAGRAM):
        send(outgoing)
        if record is not None:
            record(outgoing)
        buffer.consume_outgoing(len(outgoing))


class DtlsPskClient:
    """The UE side: one handshake to `peer` over a (tapped) UDP socket, then application data."""

    def __init__(
        self,
        sock: Any,
        peer: Address,
        identity: str,
        psk: bytes,
        *,
        ciphers: list[str],
        versions: tuple[str, str] = ("DTLSv1.2", "DTLSv1.2"),
        timeout: float = 3.0,
    ):
        self.sock, self.peer, self.psk, self.timeout = sock, peer, psk, timeout
        config = _configuration(ciphers, *versions, timeout, pre_shared_key=(identity, psk))
        self.buffer = tls.ClientContext(config).wrap_buffers(None)
        self.session = Session(established=False)

    def _send(self, data: bytes) -> None:
        self.sock.sendto(data, self.peer)

    def _receive(self, deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        while True:
            data, source = self.sock.recvfrom(65535)
            if source[:2] == self.peer[:2]:
                self.session.datagrams.append(("server", data))
                return data

    def handshake(self) -> Session:
        """Run the handshake to its end within the timeout; the session says how it ended."""
        deadline = time.monotonic() + self.timeout
        record = lambda data: self.session.datagrams.append(("client", data))  # noqa: E731
        try:
            while self.buffer._handshake_state is not tls.HandshakeStep.HANDSHAKE_OVER:
                try:
                    self.buffer.do_handshake()
                except tls.WantReadError:
                    _flush(self.buffer, self._send, record)
                    self.buffer.receive_from_network(self._receive(deadline))
                except tls.WantWriteError:
                    _flush(self.buffer, self._send, record)
            _flush(self.buffer, self._send, record)
        except TimeoutError:
            self.session.failure = f"no answer completing the handshake within {self.timeout}s"
            self.session.timed_out = True
            return self.session
        except TLSError as exc:
            _flush(self.buffer, self._send, record)  # our alert, if any, belongs in the capture
            self.session.failure = f"DTLS error: {exc}"
            return self.session
        self.session.established = True
        self.session.cipher = str(self.buffer.cipher()).replace("-", "_")
        self.session.version = next(k for k, v in VERSIONS.items() if v == self.buffer.negotiated_tls_version())
        try:
            self.session.key_log = key_log_line(self.session.datagrams, self.psk)
        except KeyLogError as exc:
            self.session.failure = f"key log: {exc}"
        return self.session

    def send(self, data: bytes) -> None:
        self.buffer.write(data)
        _flush(self.buffer, self._send, lambda data: self.session.datagrams.append(("client", data)))

    def receive(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.buffer.receive_from_network(self._receive(deadline))
                try:
                    return self.buffer.read(MAX_DATAGRAM)
                except tls.WantReadError:
                    continue
        except TimeoutError:
            return None


class PskLookup(Mapping[str, bytes]):
    """The server's PSK store as mbed TLS asks it, during ClientKeyExchange: a key per identity, looked up
    when asked (the EMSE fetches it from the EMKS then, seed 002 6.x.2.3 step 5). KeyError: unknown."""

    def __init__(self, lookup: Callable[[str], bytes | None]):
        self._lookup = lookup

    def __getitem__(self, identity: str) -> bytes:
        key = self._lookup(identity)
        if key is None:
            raise KeyError(identity)
        return key

    def __iter__(self) -> Any:
        return iter(())

    def __len__(self) -> int:
        return 0


class DtlsPskServer:
    """A DTLS-PSK server on one UDP socket, one handshake state per client address, with the cookie
    exchange (HelloVerifyRequest) of RFC 6347 4.2.1. `lookup(identity)` gives the PSK; established sessions
    hand each application record to `on_data(peer, data) -> reply or None`. Runs on a background thread."""

    def __init__(
        self,
        lookup: Callable[[str], bytes | None],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ciphers: list[str],
        versions: tuple[str, str] = ("DTLSv1.2", "DTLSv1.2"),
        timeout: float = 10.0,
        on_data: Callable[[Address, bytes], bytes | None] | None = None,
        mute: bool = False,
    ):
        config = _configuration(ciphers, *versions, timeout, pre_shared_key_store=PskLookup(lookup))
        self.mute = mute  # reads and handles every datagram but sends nothing: a hung server (a fault)
        self.context = tls.ServerContext(config)
        self.on_data = on_data
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.address: Address = self.sock.getsockname()[:2]
        self.sessions: dict[Address, Any] = {}
        self.established: list[Address] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"dtls-{self.address[1]}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def _sender(self, peer: Address) -> Callable[[bytes], Any]:
        return (lambda out: None) if self.mute else (lambda out: self.sock.sendto(out, peer))

    def _new(self, peer: Address) -> Any:
        buffer = self.context.wrap_buffers()
        buffer.setcookieparam(f"{peer[0]}:{peer[1]}".encode())
        self.sessions[peer] = buffer
        return buffer

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.sock], [], [], 0.05)
            if not ready:
                continue
            try:
                data, peer = self.sock.recvfrom(65535)
            except OSError:
                continue
            peer = peer[:2]
            buffer = self.sessions.get(peer) or self._new(peer)
            try:
                self._handle(peer, buffer, data)
            except tls.HelloVerifyRequest:  # cookie sent: the next ClientHello starts a fresh state
                _flush(buffer, self._sender(peer))
                self._new(peer)
            except Exception:  # a failed handshake ends that peer's state, never the server
                _flush(buffer, self._sender(peer))
                self.sessions.pop(peer, None)

    def _handle(self, peer: Address, buffer: Any, data: bytes) -> None:
        send = self._sender(peer)
        if buffer._handshake_state is tls.HandshakeStep.SERVER_HELLO_VERIFY_REQUEST_SENT:
            buffer = self._new(peer)  # the cookie went out: the ClientHello carrying it starts a fresh state
        buffer.receive_from_network(data)
        if buffer._handshake_state is not tls.HandshakeStep.HANDSHAKE_OVER:
            try:
                while buffer._handshake_state is not tls.HandshakeStep.HANDSHAKE_OVER:
                    buffer.do_handshake()  # one state-machine step per call
            except (tls.WantReadError, tls.WantWriteError):
                _flush(buffer, send)
                return
            _flush(buffer, send)
            self.established.append(peer)  # application data may have come with the last flight: read on
        try:
            received = buffer.read(MAX_DATAGRAM)
        except tls.WantReadError:
            return
        if not received:  # close_notify
            self.sessions.pop(peer, None)
            return
        reply = self.on_data(peer, received) if self.on_data else None
        if reply:
            buffer.write(reply)
            _flush(buffer, send)


IANA_SUITES = {"TLS_PSK_WITH_AES_128_CCM_8": 0xC0A8, "TLS_PSK_WITH_AES_128_CBC_SHA": 0x008C}
DTLS_1_0 = 0xFEFF


def probe_version(sock: Any, peer: Address, version: int = DTLS_1_0, *, timeout: float = 2.0) -> str:
    """Offer only `version` (default DTLS 1.0) in a hand-built ClientHello, answering a cookie request once.
    'accepted' if the server hello selects that version; otherwise what it did: 'alert', 'silence', or
    'other version'."""
    from conformance.dtls.records import client_hello, hello_answer

    suites = list(IANA_SUITES.values())
    sock.sendto(client_hello(version, suites), peer)
    for attempt in range(2):
        sock.settimeout(timeout)
        try:
            data, _ = sock.recvfrom(MAX_DATAGRAM)
        except TimeoutError:
            return "silence"
        kind, value = hello_answer(data)
        if kind == "cookie" and attempt == 0 and isinstance(value, bytes):
            sock.sendto(client_hello(version, suites, cookie=value, message_seq=1), peer)
            continue
        if kind == "server_hello":
            return "accepted" if value == version else "other version"
        return "alert" if kind == "alert" else "silence"
    return "silence"
