"""The EAS role: a key client over mutual TLS that registers with the HSE and fetches or receives UE keys."""

from __future__ import annotations

import queue
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from conformance.keyserver.app import create_notification_app
from conformance.keyserver.client import KeyServerClient
from conformance.keyserver.server import KeyServer, server_ssl_context
from conformance.keyserver.xml import UeKey


class Eas:
    """One EAS identity with its certificate; `push_receiver()` starts an HTTPS endpoint for pushed keys."""

    def __init__(
        self,
        base_url: str,
        binding: Mapping[str, Any],
        *,
        ca: Path,
        cert: Path | None,
        key: Path | None,
        server_cert: tuple[Path, Path] | None = None,
        on_exchange: Callable[[httpx.Response], None] | None = None,
    ):
        self.binding = binding
        self.client = KeyServerClient(
            base_url, binding, ca=ca, cert=cert, key=key, timeout=5.0, on_exchange=on_exchange
        )
        self.ca = ca
        self._server_cert = server_cert
        self.pushed: queue.Queue[tuple[UeKey, str | None]] = queue.Queue()
        self._receiver: KeyServer | None = None

    def push_receiver(self) -> str:
        """Start the notification endpoint (once) and return its URL."""
        if self._receiver is None:
            if self._server_cert is None:
                raise RuntimeError("no server certificate to receive pushes with")
            app = create_notification_app(self.binding, lambda doc, identity: self.pushed.put((doc, identity)))
            context = server_ssl_context(self.binding, ca=self.ca, cert=self._server_cert[0], key=self._server_cert[1])
            self._receiver = KeyServer(app, context)
            self._receiver.start()
        return self._receiver.url + self.binding["rest.paths.notification"]

    def close(self) -> None:
        self.client.close()
        if self._receiver is not None:
            self._receiver.stop()
