"""Serve a key-server app with uvicorn over HTTPS with mutual TLS.

uvicorn does not put the client certificate into the ASGI scope, so `PeerCertProtocol` (its h11 protocol,
forced so that httptools cannot take over) reads the peer certificate once per connection and publishes it
as the ASGI TLS extension (`scope["extensions"]["tls"]["client_cert_chain"]`, PEM, leaf first). The app reads
identities from there, so it would run unchanged under any server that implements the extension.

`KeyServer` runs one server on a background thread (tests, embedded reference SUTs); `serve` blocks (CLI).
Each exchange is logged as one line: client address, method, path, status, certificate identity.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import concurrent.futures
import contextlib
import functools
import logging
import socket
import ssl
import threading
import time
from collections.abc import Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from conformance.keyserver.certs import certificate_identity
from conformance.keyserver.client import minimum_tls_version

logger = logging.getLogger("conformance.keyserver")
T = TypeVar("T")
ASGIApp = Any


def server_ssl_context(
    binding: Mapping[str, Any],
    *,
    ca: Path | str,
    cert: Path | str,
    key: Path | str,
    faults: Iterable[str] = (),
    observe_clients: bool = False,
) -> ssl.SSLContext:
    """The server side of mutual TLS: no version below `tls.min_version`; client certificates from `ca`
    required (`tls.client_certificate_required`) unless fault `client_cert_not_required` makes them optional;
    faults `tls12_not_supported` / `tls13_not_supported` drop a version TS 33.210 6.2 requires.
    `observe_clients` (the harness's key server facing a client under test) accepts a client without a
    certificate, or one speaking a TLS version below the minimum, so that the request is recorded as evidence;
    the app then refuses the first (no identity), the cases judge the second."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = minimum_tls_version(binding)
    context.load_cert_chain(str(cert), str(key))
    context.load_verify_locations(cafile=str(ca))
    required = binding["tls.client_certificate_required"] and "client_cert_not_required" not in set(faults)
    required = required and not observe_clients
    if observe_clients:
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL's default level would refuse TLS 1.0/1.1 itself
    if "tls12_not_supported" in set(faults):
        context.minimum_version = ssl.TLSVersion.TLSv1_3
    if "tls13_not_supported" in set(faults):
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL
    return context


TLS_VERSION_CODES = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}  # ASGI TLS extension


class PeerCertProtocol(H11Protocol):
    """uvicorn's h11 protocol, plus the ASGI TLS extension in every request scope of the connection."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            der = ssl_object.getpeercert(binary_form=True)
            chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
            version = TLS_VERSION_CODES.get(ssl_object.version() or "")
            self.app = _with_scope_extension(self.app, "tls", {"client_cert_chain": chain, "tls_version": version})


def _with_scope_extension(app: ASGIApp, name: str, value: dict[str, Any]) -> ASGIApp:
    async def with_extension(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope = {**scope, "extensions": {**scope.get("extensions", {}), name: value}}
        await app(scope, receive, send)

    return with_extension


def _logged(app: ASGIApp) -> ASGIApp:
    """One log line per exchange, with the client's certificate identity, written as the response starts
    (so it precedes the answer on the wire), or with status '-' if the app never answered."""

    async def logging_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        answered = False

        def log(status: int | str) -> None:
            chain = scope.get("extensions", {}).get("tls", {}).get("client_cert_chain") or []
            identity = certificate_identity(chain[0].encode("ascii")) if chain else None
            host, port = scope.get("client") or ("-", 0)
            logger.info(
                "%s:%s %s %s %s identity=%s", host, port, scope["method"], scope["path"], status, identity or "-"
            )

        async def send_and_log(message: dict[str, Any]) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
                log(message["status"])
            await send(message)

        try:
            await app(scope, receive, send_and_log)
        finally:
            if not answered:
                log("-")

    return logging_app


class ClosingProtocol(asyncio.Protocol):
    """A key server that closes every TCP connection at once, before any TLS answer (the reference's fault
    keyserver_closes_connections): the client's handshake ends in an EOF or a reset, never in an alert."""

    def __init__(self, *_args: Any, **_kwargs: Any):
        pass

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        host, port = (transport.get_extra_info("peername") or ("-", 0))[:2]
        logger.info("%s:%s closed at once, no TLS answer (fault keyserver_closes_connections)", host, port)
        transport.close()


PLAIN_HTTP = "plain_http_answered"  # fault: plain HTTP is served on the TLS port too
HTTP_UPGRADE = "http_upgrade_accepted"  # fault: an RFC 2817 Upgrade to TLS is honoured on the TLS port
TLS_HANDSHAKE = 0x16  # the content type of the TLS record a ClientHello comes in (RFC 8446 5.1)
MAX_PLAIN_HEAD = 16384  # octets of a plain HTTP request head the upgrade fault reads before it gives up


class SniffingProtocol(asyncio.Protocol):
    """One port for TLS and plain HTTP, told apart by the first octet (the reference's faults plain_http_answered
    and http_upgrade_accepted; a conformant key server speaks TLS from the first octet, TS 33.210 6.2).

    A connection whose first octet opens a TLS handshake record gets mutual TLS as usual. Any other connection:
    with plain_http_answered, the app answers it in plain HTTP (no certificate, so no identity); with
    http_upgrade_accepted, a request head asking `Upgrade: TLS/x` with `Connection: Upgrade` gets
    `101 Switching Protocols` and the TLS handshake follows on the same connection (RFC 2817 3), and any other is
    closed unanswered. The TLS layer is asyncio's own SSLProtocol, put on the connection after the octets already
    read (what loop.start_tls does, which cannot take them)."""

    def __init__(self, *, ssl_context: ssl.SSLContext, upgrade_only: bool, **uvicorn_args: Any):
        self._uvicorn_args = uvicorn_args  # config, server_state, app_state, _loop: for the HTTP protocol
        self._ssl_context = ssl_context
        self._upgrade_only = upgrade_only
        self._transport: asyncio.Transport | None = None
        self._head = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._head += data
        if self._head[0] == TLS_HANDSHAKE:
            self._start_tls(self._head)
        elif not self._upgrade_only:
            self._plain_http(self._head)
        elif b"\r\n\r\n" in self._head:
            head, _, rest = self._head.partition(b"\r\n\r\n")
            self._upgrade(head, rest)
        elif len(self._head) > MAX_PLAIN_HEAD:
            self._close("a plain request head too long to read")

    def _plain_http(self, received: bytes) -> None:
        logger.info("%s plain HTTP answered on the TLS port (fault %s)", self._peer(), PLAIN_HTTP)
        protocol = PeerCertProtocol(**self._uvicorn_args)
        self._switch(protocol)
        protocol.data_received(received)

    def _upgrade(self, head: bytes, rest: bytes) -> None:
        fields = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip().lower()
        connection = [token.strip() for token in fields.get(b"connection", b"").split(b",")]
        if not (fields.get(b"upgrade", b"").startswith(b"tls/") and b"upgrade" in connection):
            self._close("plain HTTP without an Upgrade to TLS")
            return
        logger.info("%s RFC 2817 Upgrade to TLS accepted (fault %s)", self._peer(), HTTP_UPGRADE)
        assert self._transport is not None
        self._transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: TLS/1.2, HTTP/1.1\r\nConnection: Upgrade\r\n\r\n"
        )
        self._start_tls(rest)

    def _start_tls(self, received: bytes) -> None:
        """TLS on this connection from here on, the octets already read first; the HTTP protocol above it."""
        http = PeerCertProtocol(**self._uvicorn_args)
        tls = asyncio.sslproto.SSLProtocol(asyncio.get_running_loop(), http, self._ssl_context, None, server_side=True)
        self._switch(tls)
        while received:
            buffer = tls.get_buffer(len(received))
            size = min(len(buffer), len(received))
            buffer[:size] = received[:size]
            tls.buffer_updated(size)
            received = received[size:]

    def _switch(self, protocol: asyncio.BaseProtocol) -> None:
        assert self._transport is not None
        self._transport.set_protocol(protocol)
        protocol.connection_made(self._transport)

    def _close(self, why: str) -> None:
        logger.info("%s closed unanswered: %s", self._peer(), why)
        if self._transport is not None:
            self._transport.close()

    def _peer(self) -> str:
        host, port = ((self._transport.get_extra_info("peername") if self._transport else None) or ("-", 0))[:2]
        return f"{host}:{port}"


def _config(
    app: ASGIApp, ssl_context: ssl.SSLContext, *, closes_connections: bool = False, plain_http: str | None = None
) -> uvicorn.Config:
    """uvicorn's configuration: mutual TLS on every connection; `closes_connections` closes each at once instead;
    `plain_http` (PLAIN_HTTP or HTTP_UPGRADE, a fault) serves plain HTTP beside TLS on the same port."""
    if closes_connections:  # plain TCP: the protocol closes each connection before a TLS handshake could start
        return uvicorn.Config(app, http=ClosingProtocol, ws="none", lifespan="off", access_log=False, log_config=None)
    tls: dict[str, Any] = {"ssl_context_factory": lambda _config, _default: ssl_context}
    http: Any = PeerCertProtocol
    if plain_http is not None:  # the socket is plain TCP; SniffingProtocol puts TLS on the connections that start it
        tls = {}
        http = functools.partial(SniffingProtocol, ssl_context=ssl_context, upgrade_only=plain_http == HTTP_UPGRADE)
    return uvicorn.Config(
        _logged(app),
        http=http,
        ws="none",
        lifespan="off",
        access_log=False,  # our own line carries the identity
        log_config=None,  # leave the host application's logging alone
        timeout_graceful_shutdown=2,
        **tls,
    )


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket created with proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on connections whose
    proto says TCP, and without it every response whose body follows its headers waits ~40 ms for an ACK."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen()
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"TCP {host}:{port}: {exc.strerror}") from None
    return sock


def _url(host: str, port: int) -> str:
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


class KeyServer:
    """A uvicorn server on a background thread; a context manager. Port 0 picks a free port (`port`, `url`).

    The app's faults plain_http_answered and http_upgrade_accepted serve plain HTTP beside TLS (SniffingProtocol).
    For the reference SUTs' dead faults: `closes_connections` (default: the app's fault
    keyserver_closes_connections) closes every connection before TLS; `hang()`
    blocks the server's event loop (connections are accepted by the kernel, nothing answers them); `kill()` is
    what an exiting process leaves: the listening socket closed and every connection reset."""

    def __init__(
        self,
        app: ASGIApp,
        ssl_context: ssl.SSLContext,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        closes_connections: bool | None = None,
    ):
        self.app = app
        self.host = host
        self._socket = _listen(host, port)
        self.port: int = self._socket.getsockname()[1]
        self.url = _url(host, self.port)
        state = getattr(getattr(app, "state", None), "keyserver", None)
        faults = getattr(state, "faults", ())  # the app's catalogue faults (keyserver.app.create_app)
        if closes_connections is None:
            closes_connections = "keyserver_closes_connections" in faults
        plain_http = next((f for f in (PLAIN_HTTP, HTTP_UPGRADE) if f in faults), None)
        self._server = uvicorn.Server(
            _config(app, ssl_context, closes_connections=closes_connections, plain_http=plain_http)
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._released = threading.Event()  # ends a hang()

    def __enter__(self) -> KeyServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self, timeout: float = 10.0) -> None:
        """Start serving and return once the server accepts connections."""
        self._thread = threading.Thread(target=self._run, name=f"keyserver-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"key server on {self.url} did not start: {self._error!r}")
            time.sleep(0.01)
        logger.info("key server listening on %s", self.url)

    def stop(self, timeout: float = 10.0, *, graceful: bool = True) -> None:
        """Stop serving. Graceful: open connections may finish their responses (up to 2 s); otherwise they are
        cut at once, as a server that restarts cuts them."""
        self._released.set()
        self._server.should_exit = True
        self._server.force_exit = not graceful
        if self._thread is not None:
            self._thread.join(timeout)
        self._socket.close()

    def hang(self, timeout: float = 5.0) -> None:
        """From now on the server answers nothing, as a hung process: its event loop blocks until `stop()`, while
        the kernel still completes TCP handshakes into the listen backlog. Returns once the loop is blocked, so
        that nothing sent after the call is answered."""
        if self._loop is None:
            return
        blocked = threading.Event()

        def block() -> None:
            blocked.set()
            self._released.wait()

        self._loop.call_soon_threadsafe(block)
        blocked.wait(timeout)

    def kill(self, timeout: float = 5.0) -> None:
        """As if the process had exited: the listening socket closes (a connect is refused) and every open
        connection is reset; then the server stops."""

        async def die() -> None:
            for server in getattr(self._server, "servers", []):
                server.close()
            for connection in list(self._server.server_state.connections):
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.abort()

        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            with contextlib.suppress(Exception):
                self.submit(die()).result(timeout)
        self._server.should_exit = self._server.force_exit = True

    def run_coroutine(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine on the server's event loop (e.g. `app.state.keyserver.notify_all(ue_id)`)."""
        return self.submit(coroutine).result(timeout)

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule a coroutine on the server's event loop without waiting for it (e.g. a push)."""
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            raise RuntimeError("the key server is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._server.serve(sockets=[self._socket]))
        except BaseException as exc:  # uvicorn exits with SystemExit on a failed startup
            self._error = exc
        finally:
            self._loop.close()


def serve(app: ASGIApp, ssl_context: ssl.SSLContext, *, host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM). Port 0 picks a free port, which is logged."""
    sock = _listen(host, port)
    logger.info("key server listening on %s", _url(host, sock.getsockname()[1]))
    try:
        uvicorn.Server(_config(app, ssl_context)).run(sockets=[sock])
    finally:
        sock.close()
