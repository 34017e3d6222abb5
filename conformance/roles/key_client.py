"""A key-server client over mutual TLS (the EAS towards an HSE, the EMSE towards an EMKS): registers, fetches
or receives UE keys."""

from __future__ import annotations

import queue
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from conformance.keyserver.app import create_notification_app
from conformance.keyserver.client import KeyServerClient
from conformance.keyserver.server import KeyServer, server_ssl_context
from conformance.keyserver.xml import KeyServerXml, KeyServerXmlError, UeKey


@dataclass(frozen=True)
class ReceiverTls:
    """What the push receiver needs: its server certificate and key, the CA that issued the key server's client
    certificate (the pusher must present one), and where to listen."""

    cert: Path
    key: Path
    trusted_ca: Path
    host: str = "127.0.0.1"
    port: int = 0


class KeyClient:
    """One client identity with its certificate; `push_receiver()` starts an HTTPS endpoint for pushed keys."""

    def __init__(
        self,
        base_url: str,
        binding: Mapping[str, Any],
        *,
        ca: Path,
        cert: Path | None,
        key: Path | None,
        receiver: ReceiverTls | None = None,
        on_exchange: Callable[[httpx.Response], None] | None = None,
        on_round_trip: Callable[[float], None] | None = None,
        timeout: float = 5.0,
    ):
        self.binding = binding
        self.client = KeyServerClient(
            base_url,
            binding,
            ca=ca,
            cert=cert,
            key=key,
            timeout=timeout,
            on_exchange=on_exchange,
            on_round_trip=on_round_trip,
        )
        self.ca = ca
        self._receiver_tls = receiver
        self.pushed: queue.Queue[tuple[UeKey, str | None]] = queue.Queue()
        self._receiver: KeyServer | None = None

    def push_receiver(self) -> str:
        """Start the notification endpoint (once) and return its URL."""
        if self._receiver is None:
            tls = self._receiver_tls
            if tls is None:
                raise ValueError("this EAS was made without a push receiver certificate")
            app = create_notification_app(self.binding, lambda doc, identity: self.pushed.put((doc, identity)))
            context = server_ssl_context(self.binding, ca=tls.trusted_ca, cert=tls.cert, key=tls.key)
            self._receiver = KeyServer(app, context, host=tls.host, port=tls.port)
            self._receiver.start()
        return self._receiver.url + self.binding["rest.paths.notification"]

    def close(self) -> None:
        self.client.close()
        if self._receiver is not None:
            self._receiver.stop()


TLS_RECORD_TYPES = range(0x14, 0x19)  # change_cipher_spec, alert, handshake, application_data, heartbeat
TLS_ALERT = 0x15
ENOUGH = 1024  # octets of a plaintext answer read to say what it is


@dataclass(frozen=True)
class PlainAnswer:
    """What a server sent back to a request in the clear, and how the connection ended."""

    octets: bytes  # what arrived, up to its first line (HTTP) or its first record (TLS)
    ending: str  # closed (the server closed), reset (it reset the connection), waiting (open, nothing more came)

    @property
    def http(self) -> bool:
        """Whether the octets are (the start of) an HTTP response."""
        return bool(self.octets) and (self.octets.startswith(b"HTTP/") or b"HTTP/".startswith(self.octets))

    @property
    def tls(self) -> bool:
        """Whether the octets start a TLS record (RFC 8446 5.1: content type, then legacy version 3.x)."""
        return len(self.octets) >= 2 and self.octets[0] in TLS_RECORD_TYPES and self.octets[1] == 3

    @property
    def status_line(self) -> str:
        return self.octets.split(b"\r\n", 1)[0].decode("latin-1")

    @property
    def status(self) -> int | None:
        """The HTTP status of a plaintext HTTP answer, if its status line reads."""
        parts = self.status_line.split(" ")
        return int(parts[1]) if self.http and len(parts) > 1 and parts[1].isdigit() else None

    def describe(self) -> str:
        if not self.octets:
            return {"closed": "the connection closed", "reset": "the connection reset"}.get(
                self.ending, "no answer, the connection left open"
            )
        if self.http:
            return f"a plaintext HTTP answer: {self.status_line!r}"
        if self.tls and self.octets[0] == TLS_ALERT and len(self.octets) >= 7:
            return f"a TLS alert (level {self.octets[5]}, description {self.octets[6]}), then {self.ending}"
        if self.tls:
            return f"a TLS record of content type {self.octets[0]:#04x}, then {self.ending}"
        return f"{len(self.octets)} octets in the clear that are neither HTTP nor TLS: {self.octets[:32].hex()}"


def plain_http_exchange(host: str, port: int, request: bytes, timeout: float) -> PlainAnswer:
    """Send `request` in the clear on a new TCP connection to (host, port) and read the answer: until its first
    line (HTTP) or first record header and two octets (a TLS alert) arrived, the server closed or reset the
    connection, or `timeout` passed. Raises OSError when no connection could be made (nothing listens, no
    answer to the connect)."""
    received = b""
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
            while not _says_enough(received):
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(ENOUGH)
                if not chunk:
                    return PlainAnswer(received, "closed")
                received += chunk
        except (ConnectionResetError, BrokenPipeError):
            return PlainAnswer(received, "reset")
        except TimeoutError:
            return PlainAnswer(received, "waiting")
    return PlainAnswer(received, "waiting")


def _says_enough(octets: bytes) -> bool:
    if len(octets) >= ENOUGH:
        return True
    if octets[:1] and octets[0] in TLS_RECORD_TYPES:
        return len(octets) >= 7  # record header (5) and an alert's level and description
    return b"\r\n" in octets or (len(octets) >= 5 and not octets.startswith(b"HTTP/"))


PATH_FIELDS = ("session", "ue_id", "key_id")  # the {placeholders} a raw request's path may hold


@dataclass(frozen=True)
class RawAnswer:
    """What one raw request got: the HTTP status and body, or the transport error that ended it without one."""

    status: int | None
    body: bytes
    seconds: float
    timeout: float  # the client's read timeout the answer was waited for
    error: str | None = None  # no HTTP answer: why (a timeout, the connection closed or reset)
    timed_out: bool = False


def fill_path(path: str, values: Mapping[str, str]) -> str:
    """`path` with each {session}, {ue_id}, {key_id} it names replaced by its value, percent-encoded (a path's
    other characters are sent as they are)."""
    for name in PATH_FIELDS:
        if name in values:
            path = path.replace(f"{{{name}}}", quote(values[name], safe=""))
    return path


def raw_request(
    client: KeyServerClient, method: str, path: str, headers: Mapping[str, str] | None, body: bytes | None
) -> RawAnswer:
    """Send exactly this request (only httpx's defaults added: Host, Content-Length, ...) and return what came
    back; never raises for what the server did (no answer, a timeout, a reset)."""
    timeout = client.http.timeout.read or 0.0
    start = time.perf_counter()
    try:
        url = client.http.base_url.copy_with(raw_path=path.encode("ascii", "replace"))  # '//x' is a path here
        response = client.http.request(method, url, content=body, headers=dict(headers or {}))
    except httpx.TimeoutException as exc:
        return RawAnswer(None, b"", time.perf_counter() - start, timeout, f"{type(exc).__name__}: {exc}", True)
    except (httpx.TransportError, OSError) as exc:
        return RawAnswer(None, b"", time.perf_counter() - start, timeout, f"{type(exc).__name__}: {exc}")
    return RawAnswer(response.status_code, response.content, time.perf_counter() - start, timeout)


def answer_problem(answer: RawAnswer, xml: KeyServerXml, *, no_key: bool) -> tuple[str, str] | None:
    """(oracle, what was seen) if the answer breaks one of the key server's robustness oracles: no_hang (no answer
    within the reply timeout), no_5xx (a server error), no_key_when_refused (`no_key`: a 2xx UE key document).
    None if it keeps them (a connection closed without an answer included: a refusal)."""
    if answer.timed_out or answer.seconds > answer.timeout > 0:
        return "no_hang", f"no answer within {answer.timeout:.1f}s ({answer.error or f'{answer.seconds:.1f}s'})"
    if answer.status is None:
        return None
    if answer.status >= 500:
        return "no_5xx", f"HTTP {answer.status}: {answer.body[:200]!r}"
    if no_key and 200 <= answer.status < 300:
        try:
            doc = xml.parse_ue_key(answer.body)
        except (KeyServerXmlError, ValueError):
            return None
        return "no_key_when_refused", f"HTTP {answer.status}: the key of UE {doc.ue_id!r} key id {doc.key_id.hex()}"
    return None
