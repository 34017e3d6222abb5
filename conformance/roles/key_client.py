"""A key-server client over mutual TLS (the EAS towards an HSE, the EMSE towards an EMKS): registers, fetches
or receives UE keys."""

from __future__ import annotations

import queue
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from conformance.keyserver.app import create_notification_app
from conformance.keyserver.client import KeyServerClient
from conformance.keyserver.server import KeyServer, server_ssl_context
from conformance.keyserver.xml import UeKey


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
        timeout: float = 5.0,
    ):
        self.binding = binding
        self.client = KeyServerClient(
            base_url, binding, ca=ca, cert=cert, key=key, timeout=timeout, on_exchange=on_exchange
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
