"""What every reference SUT's UDP endpoint does with a datagram, whatever protocol it speaks: once a dead fault
took effect it reads the datagram and does nothing; a datagram that breaks its handler is logged and dropped, and
the endpoint keeps serving (a reference must stay up whatever the harness sends it)."""

from __future__ import annotations

import asyncio
import logging


class GuardedEndpoint(asyncio.DatagramProtocol):
    """An asyncio UDP endpoint whose `handle(data, addr)` never brings it down."""

    logger = logging.getLogger("best-conformance.reference")
    transport: asyncio.DatagramTransport | None = None
    dead = False  # a dead fault took effect: nothing is answered any more
    errors = 0  # datagrams that broke the handler

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.dead:  # hung: the datagram is read, nothing happens
            return
        try:
            self.handle(data, addr)
        except Exception:  # the reference must stay up whatever it receives
            self.errors += 1
            self.logger.exception("dropped a datagram from %s that broke the handler", addr)

    def handle(self, data: bytes, addr: tuple[str, int]) -> None:
        raise NotImplementedError
