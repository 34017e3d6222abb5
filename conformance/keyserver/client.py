"""An httpx client for a key server (EMKS or the HSE's EAS-facing side), over mutual TLS.

The convenience methods (`register`, `fetch_key`, ...) accept any status the binding allows and raise
`KeyServerError` on anything else. Roles that judge a SUT's answers use `request` and `path`, which return the
raw `httpx.Response`, and assert on the statuses themselves.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from conformance.keyserver.xml import KeyServerXml, KeyServerXmlError

T = TypeVar("T")


class KeyServerError(Exception):
    """An answer the binding does not allow, or a body that is not the expected document."""

    def __init__(self, message: str, response: httpx.Response):
        self.response = response
        self.status = response.status_code
        self.body = response.content
        super().__init__(f"{message}: HTTP {self.status} {self.body[:200]!r}")


def minimum_tls_version(binding: Mapping[str, Any]) -> ssl.TLSVersion:
    """`tls.min_version` ('TLSv1.2') as the ssl module names it."""
    return ssl.TLSVersion[binding["tls.min_version"].replace(".", "_")]


def client_ssl_context(
    binding: Mapping[str, Any], *, ca: Path | str, cert: Path | str | None = None, key: Path | str | None = None
) -> ssl.SSLContext:
    """Trust `ca`, present `cert`/`key` when given, and refuse TLS versions below the binding's minimum."""
    context = ssl.create_default_context(cafile=str(ca))
    context.minimum_version = minimum_tls_version(binding)
    if cert is not None:
        context.load_cert_chain(str(cert), None if key is None else str(key))
    return context


class KeyServerClient:
    """One client identity talking to one key server. A context manager; `close` ends the connections."""

    def __init__(
        self,
        base_url: str,
        binding: Mapping[str, Any],
        *,
        ca: Path | str | None = None,
        cert: Path | str | None = None,
        key: Path | str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        on_exchange: Callable[[httpx.Response], None] | None = None,
        on_round_trip: Callable[[float], None] | None = None,
    ):
        if ssl_context is None:
            if ca is None:
                raise ValueError("give the CA to trust (ca=) or a ready ssl_context")
            ssl_context = client_ssl_context(binding, ca=ca, cert=cert, key=key)
        self.binding = binding
        self.xml = KeyServerXml(binding)
        hooks = {"response": [on_exchange]} if on_exchange else {}
        self.http = httpx.Client(base_url=base_url, verify=ssl_context, timeout=timeout, event_hooks=hooks)
        self.on_round_trip = on_round_trip  # seconds from a request to its response (a connection's set-up included)

    def __enter__(self) -> KeyServerClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # -- raw access -------------------------------------------------------------------------------------

    def path(self, name: str, **params: str) -> str:
        """The binding's `rest.paths.<name>` with its placeholders filled in, each percent-encoded."""
        return self.binding[f"rest.paths.{name}"].format(**{k: quote(v, safe="") for k, v in params.items()})

    def request(
        self, method: str, path: str, *, content: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """Send one request; a body goes with the binding's content type unless `headers` says otherwise."""
        sent = httpx.Headers({"content-type": self.binding["rest.content_type"]} if content is not None else {})
        sent.update(headers or {})  # case-insensitive: a caller's Content-Type replaces the default
        start = time.perf_counter()
        response = self.http.request(method, path, content=content, headers=sent)
        if self.on_round_trip is not None:
            self.on_round_trip(time.perf_counter() - start)
        return response

    # -- the procedures ---------------------------------------------------------------------------------

    def register(self, client_id: str) -> str:
        """POST a registration; the session id the server allocated."""
        response = self.request("POST", self.path("register"), content=self.xml.registration(client_id))
        self._expect(response, "registered", "registration")
        return self._parse(response, self.xml.parse_registration_answer)

    def fetch_key(self, session_id: str, ue_id: str, key_id: bytes) -> bytes:
        """GET the key for a UE and key identifier; the answer must name the same UE and key identifier."""
        path = self.path("ue_key", session_id=session_id, ue_id=ue_id, key_id=key_id.hex())
        response = self.request("GET", path)
        self._expect(response, "key_delivered", "key request")
        doc = self._parse(response, self.xml.parse_ue_key)
        if (doc.ue_id, doc.key_id) != (ue_id, key_id):
            raise KeyServerError(
                f"key answer names UE {doc.ue_id!r} key id {doc.key_id.hex()}, asked {ue_id!r} {key_id.hex()}",
                response,
            )
        return doc.key

    def deregister(self, session_id: str) -> None:
        response = self.request("DELETE", self.path("registration", session_id=session_id))
        self._expect(response, "deregistered", "deregistration")

    def subscribe(self, session_id: str, notify_uri: str) -> None:
        """Ask for pushes of new keys to `notify_uri` (`rest.status.subscribed`)."""
        response = self.request(
            "POST", self.path("subscription", session_id=session_id), content=self.xml.subscription(notify_uri)
        )
        self._expect(response, "subscribed", "subscription")

    def _expect(self, response: httpx.Response, status_key: str, what: str) -> None:
        allowed = self.binding[f"rest.status.{status_key}"]
        if response.status_code not in allowed:
            raise KeyServerError(f"{what} answered {response.status_code}, expected one of {allowed}", response)

    @staticmethod
    def _parse(response: httpx.Response, parse: Callable[[bytes], T]) -> T:
        try:
            return parse(response.content)
        except KeyServerXmlError as exc:
            raise KeyServerError(f"answer body is not the expected document ({exc.reason})", response) from None
