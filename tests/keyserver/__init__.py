"""Helpers for the key-server tests: real uvicorn over HTTPS with mutual TLS on 127.0.0.1, no mocks.

Each test module starts its own server(s) in a module-scoped fixture built from these helpers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from conformance.keyserver.app import KeyServerState, create_app
from conformance.keyserver.certs import CertificateDirectory
from conformance.keyserver.client import KeyServerClient, client_ssl_context
from conformance.keyserver.server import KeyServer, server_ssl_context
from conformance.keyserver.store import EmksStore
from tests.kat import h, load_fixture

CLIENT_ID = "emse-1"
OTHER_CLIENT_ID = "emse-2"
PUSH_IDENTITY = "emks.test"
UE_ID = "imsi-001010123456789"
SET_1 = load_fixture("milenage_ts35208.yaml")["vectors"][0]
K, OPC, RAND = h(SET_1["k"]), h(SET_1["opc"]), h(SET_1["rand"])


def rand_of_run(run: int) -> bytes:
    """RAND of the n-th AKA run after test set 1's: its last octets (the key identifier) differ per run."""
    return RAND[:-4] + ((int.from_bytes(RAND[-4:], "big") + run) % 2**32).to_bytes(4, "big")


@dataclass
class Running:
    """A started key server with what a test needs to talk to it."""

    server: KeyServer
    store: EmksStore
    certs: CertificateDirectory
    binding: Mapping[str, Any]

    @property
    def state(self) -> KeyServerState:
        return self.server.app.state.keyserver

    def client(self, identity: str | None = CLIENT_ID, **kwargs: Any) -> KeyServerClient:
        """A client presenting the certificate of `identity` (None: no certificate)."""
        pair = self.certs.client(identity) if identity is not None else None
        return KeyServerClient(
            self.server.url,
            self.binding,
            ca=self.certs.ca,
            cert=pair.cert if pair else None,
            key=pair.key if pair else None,
            **kwargs,
        )


@contextlib.contextmanager
def running_keyserver(
    binding: Mapping[str, Any], certs: CertificateDirectory, *, faults: Iterable[str] = ()
) -> Iterator[Running]:
    """An EMKS on 127.0.0.1 with test set 1's key for UE_ID, pushing with PUSH_IDENTITY's certificate."""
    store = EmksStore(binding, faults=faults)
    store.provision_from_aka(UE_ID, K, OPC, RAND)
    push = certs.client(PUSH_IDENTITY)
    app = create_app(
        binding,
        store,
        faults=faults,
        push_ssl=client_ssl_context(binding, ca=certs.ca, cert=push.cert, key=push.key),
    )
    server_pair = certs.server()
    context = server_ssl_context(binding, ca=certs.ca, cert=server_pair.cert, key=server_pair.key, faults=faults)
    with KeyServer(app, context) as server:
        yield Running(server, store, certs, binding)
