"""What every reference SUT's UDP endpoint does with a datagram, whatever protocol it speaks: once a dead fault
took effect it reads the datagram and does nothing; a datagram that breaks its handler is logged and dropped, and
the endpoint keeps serving (a reference must stay up whatever the harness sends it)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Self


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


class EndpointThread:
    """A reference's UDP endpoint served by an asyncio loop on a thread of its own (tests, embedded runs,
    `serve`): started by `with`, bound at `bind` (port 0: a free one), `address` once started. A subclass adds
    what else its loop runs in `_opened` and the transports it closes in `_transports`."""

    def __init__(self, protocol: GuardedEndpoint, bind: tuple[str, int], name: str):
        self.protocol = protocol
        self._bind = bind
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self.address: tuple[str, int] | None = None

    @property
    def bind_address(self) -> tuple[str, int]:
        """Where it binds (port 0: a free one), before it started."""
        return self._bind

    def __enter__(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._open(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _open(self) -> None:
        transport, _ = await self._loop.create_datagram_endpoint(lambda: self.protocol, local_addr=self._bind)
        self.address = transport.get_extra_info("sockname")[:2]
        await self._opened()

    async def _opened(self) -> None:
        """What else the loop starts once the endpoint listens."""

    def _transports(self) -> list[asyncio.BaseTransport | None]:
        return [self.protocol.transport]

    def close(self) -> None:
        if not self._thread.is_alive():
            return

        async def shutdown() -> None:
            for transport in self._transports():
                if transport is not None:
                    transport.close()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
