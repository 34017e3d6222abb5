"""The key-server REST model as an ASGI app: the EMKS of TR 33.863 Sol. #10 and the HSE's EAS-facing interface
of TS 33.163 Annex B are one pattern (design.md 2), so one app serves both with a different `KeyStore`.

Every path, status, element name, content type and size limit comes from the binding. The client's identity
is the subject commonName of its TLS certificate, read from the ASGI TLS extension
(`scope["extensions"]["tls"]["client_cert_chain"]`, which `conformance.keyserver.server` fills in for
uvicorn). A registration is owned by the identity that made it: only that identity may use its session id.
A UE identity travels as one path segment: uvicorn decodes %2F before routing, so an id with '/' in it
cannot be addressed (IMSI, SUCI and NAI forms have none).

The reference SUT's key-server faults (conformance/faults.py) are switched on by name here, except
`client_cert_not_required` (TLS, in server.py), `keyserver_closes_connections`, `plain_http_answered` and
`http_upgrade_accepted` (each connection, in server.py, which reads them from the app's faults) and
`past_keys_not_kept` (in the store). `keyserver_500_on_unknown_element` is the one no case catches: the fuzzer
(conformance.fuzz.keyserver) does. `keyserver_drops_above_rate` no case catches either (a case sends a few requests
a second): a load run (conformance.load.keyserver_users) does.
"""

from __future__ import annotations

import logging
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar

import defusedxml.ElementTree
import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conformance.keyserver.certs import certificate_identity
from conformance.keyserver.store import KeyStore
from conformance.keyserver.xml import KeyServerXml, KeyServerXmlError, UeKey

logger = logging.getLogger(__name__)

T = TypeVar("T")
UNKNOWN_ELEMENT_500 = "keyserver_500_on_unknown_element"  # fault: only fuzzing finds it (issue 17)
DROPS_ABOVE_RATE = "keyserver_drops_above_rate"  # fault: only a load run finds it (issue 18)
RATE_LIMIT = 50  # requests per second the faulty key server serves; the rest of each second is answered 503


@dataclass
class _Session:
    client_id: str
    owner: str | None  # certificate identity that registered
    notify_uri: str | None = None


@dataclass(frozen=True)
class Delivery:
    """The outcome of one push: the HTTP status, or the transport error that prevented one."""

    session_id: str
    notify_uri: str
    status: int | None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and httpx.codes.is_success(self.status)


def client_identity(request: Request) -> str | None:
    """The identity in the peer's certificate, or None if it sent none."""
    chain = request.scope.get("extensions", {}).get("tls", {}).get("client_cert_chain") or []
    return certificate_identity(chain[0].encode("ascii")) if chain else None


def answer_status(binding: Mapping[str, Any], name: str) -> int:
    """The first status the binding lists under `rest.status.<name>`: the one this server answers."""
    return binding[f"rest.status.{name}"][0]


class BodyRules:
    """Content type, size limit and XML checks every POST body passes, in that order."""

    def __init__(self, binding: Mapping[str, Any]):
        self.binding = binding
        self.content_type = binding["rest.content_type"]
        self.limit = binding["rest.max_body_bytes"]

    def status(self, name: str) -> int:
        return answer_status(self.binding, name)

    async def read(self, request: Request) -> bytes:
        media_type = request.headers.get("content-type", "").split(";")[0].strip()
        if media_type.lower() != self.content_type.lower():
            raise HTTPException(
                self.status("unsupported_media_type"),
                f"content type must be {self.content_type}, got {media_type or 'none'}",
            )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            raise HTTPException(self.status("too_large"), f"body of {declared} octets exceeds {self.limit}")
        body = bytearray()
        async for chunk in request.stream():  # a chunked body has no Content-Length: count as it arrives
            body += chunk
            if len(body) > self.limit:
                raise HTTPException(self.status("too_large"), f"body exceeds {self.limit} octets")
        return bytes(body)

    async def parse(self, request: Request, parse: Callable[[bytes], T]) -> T:
        return self.parse_body(await self.read(request), parse)

    def parse_body(self, body: bytes, parse: Callable[[bytes], T]) -> T:
        try:
            return parse(body)
        except KeyServerXmlError as exc:
            raise HTTPException(self.status("bad_request"), exc.reason) from None


class KeyServerState:
    """The registrations and pushes of one key server; `app.state.keyserver`."""

    def __init__(
        self,
        binding: Mapping[str, Any],
        store: KeyStore,
        *,
        faults: Iterable[str] = (),
        push_ssl: ssl.SSLContext | None = None,
    ):
        self.binding = binding
        self.store = store
        self.faults = frozenset(faults)
        self.push_ssl = push_ssl
        self.xml = KeyServerXml(binding, expand_entities="xml_entities_expanded" in self.faults)
        self.bodies = BodyRules(binding)
        self.registrations: dict[str, _Session] = {}
        self._lock = threading.Lock()  # notify_all may be driven from another thread
        self._window = (0, 0)  # fault keyserver_drops_above_rate: (the current second, requests in it)

    def _overloaded(self) -> None:
        """Fault keyserver_drops_above_rate: past RATE_LIMIT requests in one second of the clock, each further
        request of that second is answered 503, as a key server sized below its load sheds it."""
        if DROPS_ABOVE_RATE not in self.faults:
            return
        second = int(time.monotonic())
        with self._lock:
            start, count = self._window
            count = count + 1 if start == second else 1
            self._window = (second, count)
        if count > RATE_LIMIT:
            raise HTTPException(HTTPStatus.SERVICE_UNAVAILABLE, f"over {RATE_LIMIT} requests this second")

    # -- routes -----------------------------------------------------------------------------------------

    async def register(self, request: Request) -> Response:
        self._overloaded()
        body = await self.bodies.read(request)
        if UNKNOWN_ELEMENT_500 in self.faults:
            self._fields_by_name(body)
        client_id = self.bodies.parse_body(body, self.xml.parse_registration)
        identity = client_identity(request)
        if client_id != identity and "cert_identity_not_checked" not in self.faults:
            raise HTTPException(
                self.bodies.status("forbidden"),
                f"client id {client_id!r} is not the identity of the client certificate ({identity!r})",
            )
        session_id = secrets.token_urlsafe(16)
        with self._lock:
            self.registrations[session_id] = _Session(client_id, identity)
        status = HTTPStatus.OK if "wrong_register_status" in self.faults else self.bodies.status("registered")
        return Response(
            self.xml.registration_answer(session_id),
            status_code=status,
            media_type=self.bodies.content_type,
            headers={"location": self.binding["rest.paths.registration"].format(session_id=session_id)},
        )

    async def deregister(self, request: Request) -> Response:
        self._overloaded()
        session_id, _ = self._owned(request)
        if "session_not_deleted" not in self.faults:
            with self._lock:
                self.registrations.pop(session_id, None)
        return Response(status_code=self.bodies.status("deregistered"))

    async def ue_key(self, request: Request) -> Response:
        self._overloaded()
        _, registration = self._owned(request)
        ue_id = request.path_params["ue_id"]
        key_id = self._key_id(request.path_params["key_id"])
        if "key_id_ignored" in self.faults:  # still answered under the asked key id: only the key gives it away
            newest = self.store.latest(registration.client_id, ue_id)
            key = newest[1] if newest else None
        else:
            key = self.store.lookup(registration.client_id, ue_id, key_id)
        if key is None:
            raise HTTPException(self.bodies.status("unknown_key"), f"no key {key_id.hex()} for UE {ue_id!r}")
        return Response(
            self.xml.ue_key(UeKey(ue_id, key_id, key)),
            status_code=self.bodies.status("key_delivered"),
            media_type=self.bodies.content_type,
        )

    async def subscribe(self, request: Request) -> Response:
        """Store where to push new keys (`rest.status.subscribed`)."""
        _, registration = self._owned(request, check_owner="subscription_not_owned" not in self.faults)
        registration.notify_uri = await self.bodies.parse(request, self.xml.parse_subscription)
        return Response(status_code=self.bodies.status("subscribed"))

    # -- push -------------------------------------------------------------------------------------------

    async def notify_all(self, ue_id: str) -> list[Delivery]:
        """Push the newest key of a UE to every subscribed client, each derived for that client, over mutual
        TLS with the key server's own client certificate (`push_ssl`)."""
        if self.push_ssl is None:
            raise RuntimeError("no client certificate for pushes: create the app with push_ssl=")
        with self._lock:
            targets = [(sid, s.client_id, s.notify_uri) for sid, s in self.registrations.items() if s.notify_uri]
        deliveries = []
        async with httpx.AsyncClient(verify=self.push_ssl, timeout=10.0) as client:
            for session_id, client_id, uri in targets:
                if "push_for_wrong_client" in self.faults:
                    client_id = f"not-{client_id}"
                newest = self.store.latest(client_id, ue_id)
                if newest is None:
                    continue
                body = self.xml.ue_key(UeKey(ue_id, *newest))
                try:
                    answer = await client.post(uri, content=body, headers={"content-type": self.bodies.content_type})
                except httpx.HTTPError as exc:
                    deliveries.append(Delivery(session_id, uri, None, f"{type(exc).__name__}: {exc}"))
                else:
                    deliveries.append(Delivery(session_id, uri, answer.status_code))
                logger.info("push %s key %s to %s: %s", ue_id, newest[0].hex(), uri, deliveries[-1])
        return deliveries

    # -- helpers ----------------------------------------------------------------------------------------

    def _fields_by_name(self, body: bytes) -> dict[str, str]:
        """Fault keyserver_500_on_unknown_element: the registration's children looked up in a table of the
        elements the schema knows before the schema check, so that an element it does not know raises KeyError,
        which nothing catches: the server answers 500 (a body that is no registration goes on to the check)."""
        try:
            root = defusedxml.ElementTree.fromstring(body, forbid_dtd=True)
        except Exception:
            return {}
        names = self.xml.names
        if root.tag != names.tag("registration"):
            return {}
        handlers = {names.tag("client_id"): "client_id"}
        return {handlers[child.tag]: child.text or "" for child in root}

    def _owned(self, request: Request, *, check_owner: bool = True) -> tuple[str, _Session]:
        """The registration a path names, if the caller's certificate identity owns it (404 / 403 otherwise)."""
        session_id = request.path_params["session_id"]
        with self._lock:
            registration = self.registrations.get(session_id)
        if registration is None:
            raise HTTPException(self.bodies.status("unknown_registration"), "no such registration")
        if check_owner and client_identity(request) != registration.owner:
            raise HTTPException(self.bodies.status("forbidden"), "the registration belongs to another identity")
        return session_id, registration

    def _key_id(self, text: str) -> bytes:
        octets = self.xml.names.key_id_octets
        try:
            key_id = bytes.fromhex(text)
        except ValueError:
            key_id = b""
        if len(key_id) != octets or len(text) != 2 * octets:
            raise HTTPException(self.bodies.status("bad_request"), f"key id must be {octets} octets in hex")
        return key_id


def create_app(
    binding: Mapping[str, Any],
    store: KeyStore,
    *,
    faults: Iterable[str] = frozenset(),
    push_ssl: ssl.SSLContext | None = None,
) -> Starlette:
    """The key server. `push_ssl` (a client context with the server's own certificate) enables
    `app.state.keyserver.notify_all`; `faults` names catalogue faults of component 'keyserver'."""
    state = KeyServerState(binding, store, faults=faults, push_ssl=push_ssl)
    app = Starlette(
        routes=[
            Route(binding["rest.paths.register"], state.register, methods=["POST"]),
            Route(binding["rest.paths.registration"], state.deregister, methods=["DELETE"]),
            Route(binding["rest.paths.ue_key"], state.ue_key, methods=["GET"]),
            Route(binding["rest.paths.subscription"], state.subscribe, methods=["POST"]),
        ]
    )
    app.router.redirect_slashes = False  # a key server answers, it does not send clients elsewhere
    app.state.keyserver = state
    return app


def create_notification_app(binding: Mapping[str, Any], on_key: Callable[[UeKey, str | None], None]) -> Starlette:
    """The client side of push: receives notifications at `rest.paths.notification` and hands each key, with
    the pushing server's certificate identity, to `on_key`, and answers `rest.status.notified` (a key server
    counts any 2xx as delivered)."""
    xml = KeyServerXml(binding)
    bodies = BodyRules(binding)

    async def notification(request: Request) -> Response:
        doc = await bodies.parse(request, xml.parse_ue_key)
        on_key(doc, client_identity(request))
        return Response(status_code=bodies.status("notified"))

    app = Starlette(routes=[Route(binding["rest.paths.notification"], notification, methods=["POST"])])
    app.router.redirect_slashes = False
    return app
