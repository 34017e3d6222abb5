"""The EMKS the harness plays towards an EMSE under test (TR 33.863 Sol. #10, seed 002 6.x.2.2).

It is the conformant key server of the reference EMKS (same app, same store, provisioned from the PIXIT), with
two additions a tester needs: every exchange is recorded (method, route, body, status, the client's
certificate identity and TLS version) so that cases can check what the SUT sent, and the server certificate
can be swapped for one from another CA, to see whether the SUT authenticates its key server.

A client without a certificate is let through TLS (`observe_clients`) so that its request is on record; the
app then refuses it, as it has no identity.
"""

from __future__ import annotations

import re
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from conformance.keyserver.app import create_app
from conformance.keyserver.certs import certificate_identity, foreign_certificates
from conformance.keyserver.server import KeyServer, server_ssl_context
from conformance.keyserver.store import EmksStore

KEPT = 1 << 20  # octets of a request body kept as evidence
TLS_VERSION_NAMES = {0x0301: "TLSv1", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}


@dataclass(frozen=True)
class Exchange:
    """One request the SUT made and the harness's answer."""

    time: float  # when the request arrived
    method: str
    path: str
    route: str | None  # the rest.paths name it matched: register, registration, ue_key, subscription
    params: dict[str, str]
    status: int | None
    identity: str | None  # subject commonName of the client certificate, None without one
    tls_version: str | None
    content_type: str
    body: bytes

    def to_dict(self) -> dict[str, Any]:
        """Evidence view; a key-server body never carries a key in a request, so bodies are shown whole."""
        return {
            "time": self.time,
            "http": f"{self.method} {self.path}",
            "route": self.route,
            "status": self.status,
            "identity": self.identity,
            "tls": self.tls_version,
            "content_type": self.content_type,
            "body": self.body.decode("utf-8", "replace")[:2000],
        }


@dataclass
class ExchangeLog:
    """Every exchange of the run, in order; cases look at those since they began."""

    entries: list[Exchange] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _arrived: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self._arrived = threading.Condition(self._lock)

    def add(self, exchange: Exchange) -> None:
        with self._arrived:
            self.entries.append(exchange)
            self._arrived.notify_all()

    def since(self, start: float, route: str | None = None) -> list[Exchange]:
        with self._lock:
            return [e for e in self.entries if e.time >= start and (route is None or e.route == route)]

    def wait_for(self, start: float, route: str, timeout: float) -> Exchange | None:
        """The first exchange on `route` since `start`, waiting up to `timeout` seconds for it."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = [e for e in self.entries if e.time >= start and e.route == route]
                remaining = deadline - time.monotonic()
                if found or remaining <= 0:
                    return found[0] if found else None
                self._arrived.wait(remaining)


def client_exchange(response: Any, routes: list[tuple[str, re.Pattern[str]]], identity: str | None) -> Exchange:
    """An exchange the harness made as a key-server client (an httpx response), in the same form as those it
    records as a server. The answer's body is left out: it may carry a key."""
    request = response.request
    path = request.url.path
    route, params = _match(routes, path)
    stream = response.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    return Exchange(
        time.time(),
        request.method,
        path,
        route,
        params,
        response.status_code,
        identity,
        ssl_object.version() if ssl_object is not None else None,
        request.headers.get("content-type", ""),
        _request_body(request),
    )


def _request_body(request: httpx.Request) -> bytes:
    try:
        return request.content
    except httpx.RequestNotRead:  # a streamed body (e.g. chunked): not kept
        return b"(streamed body, not kept)"


def _match(routes: list[tuple[str, re.Pattern[str]]], path: str) -> tuple[str | None, dict[str, str]]:
    """The rest.paths name a path matches and its placeholders' values; (None, {}) for none."""
    return next(((name, m.groupdict()) for name, pattern in routes if (m := pattern.match(path))), (None, {}))


def route_patterns(binding: Mapping[str, Any]) -> list[tuple[str, re.Pattern[str]]]:
    return [
        (name, re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$"))
        for name, path in binding.section("rest.paths").items()
    ]


def recorded(app: Any, binding: Any, log: ExchangeLog) -> Any:
    """The ASGI app, recording each HTTP exchange into `log` once it is answered (or abandoned)."""
    routes = route_patterns(binding)

    async def recording_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        arrived, logged = time.time(), False
        # The body is read before the app sees it, so that it is on record even when the app answers without
        # reading it (e.g. 415 for a wrong content type); past KEPT octets the rest streams to the app as sent.
        body, more = bytearray(), True
        while more and len(body) < KEPT:
            message = await receive()
            if message["type"] != "http.request":
                break
            body.extend(message.get("body", b""))
            more = message.get("more_body", False)
        replay = [{"type": "http.request", "body": bytes(body), "more_body": more}]

        def log_once(status: int | None) -> None:
            nonlocal logged
            if not logged:
                logged = True
                log.add(_exchange(scope, routes, arrived, status, bytes(body[:KEPT])))

        async def receive_and_keep() -> dict[str, Any]:
            return replay.pop() if replay else await receive()

        async def send_and_log(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                log_once(message["status"])  # on record before the client can act on the answer
            await send(message)

        try:
            await app(scope, receive_and_keep, send_and_log)
        finally:
            log_once(None)

    return recording_app


def _exchange(
    scope: dict[str, Any], routes: list[tuple[str, re.Pattern[str]]], arrived: float, status: int | None, body: bytes
) -> Exchange:
    tls = scope.get("extensions", {}).get("tls", {})
    chain = tls.get("client_cert_chain") or []
    route, params = _match(routes, scope["path"])
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    return Exchange(
        arrived,
        scope["method"],
        scope["path"],
        route,
        params,
        status,
        certificate_identity(chain[0].encode("ascii")) if chain else None,
        TLS_VERSION_NAMES.get(tls.get("tls_version") or 0),
        headers.get("content-type", ""),
        body,
    )


class HarnessEmks:
    """The harness's EMKS: a conformant key server provisioned from the PIXIT, recording every exchange.

    `certs` holds the server certificate and the CA that client certificates must chain to (the profile's
    `tls` files for a vendor's EMSE, a harness-made directory for the embedded one). A context manager.
    """

    def __init__(
        self,
        binding: Mapping[str, Any],
        store: EmksStore,
        *,
        ca: Path,
        cert: Path,
        key: Path,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.binding, self.ca, self.host = binding, ca, host
        self.log = ExchangeLog()
        self.app = create_app(binding, store)
        self._asgi = recorded(self.app, binding, self.log)
        self._own = (cert, key)
        self.server = KeyServer(self._asgi, self._context(ca, cert, key), host=host, port=port)
        self.port, self.url = self.server.port, self.server.url
        self.changed = False  # serving with another certificate or TLS version than its own

    def _context(self, ca: Path, cert: Path, key: Path, version: str | None = None) -> Any:
        context = server_ssl_context(self.binding, ca=ca, cert=cert, key=key, observe_clients=True)
        if version is not None:
            context.minimum_version = context.maximum_version = ssl.TLSVersion[version.replace(".", "_")]
        return context

    def __enter__(self) -> HarnessEmks:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    def live_session(self, identity: str) -> str | None:
        """The session id of the newest registration the identity holds now, if any (an EMSE that registered
        twice uses the session of its newest registration)."""
        registrations = self.app.state.keyserver.registrations
        return next((sid for sid, r in reversed(list(registrations.items())) if r.owner == identity), None)

    def impersonate(self) -> None:
        """Serve from now on with a certificate for the same host names from another CA (a rogue key server):
        the same port, the same registrations. `restore` goes back."""
        rogue = foreign_certificates().server()
        self._restart(rogue.cert, rogue.key)
        self.changed = True

    def offer_only(self, version: str) -> None:
        """Serve from now on with only this TLS version (TLSv1.2 or TLSv1.3); `restore` goes back."""
        self._restart(*self._own, version=version)
        self.changed = True

    def restore(self) -> None:
        if self.changed:
            self._restart(*self._own)
            self.changed = False

    def _restart(self, cert: Path, key: Path, version: str | None = None) -> None:
        """A new server on the same port with another TLS context; open connections end, so clients that keep
        them alive must connect again under the new terms."""
        self.server.stop(graceful=False)  # an EMSE's kept-alive connection would hold a graceful stop for 2 s
        self.server = KeyServer(self._asgi, self._context(self.ca, cert, key, version), host=self.host, port=self.port)
        self.server.start()
