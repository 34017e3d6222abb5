"""A UDP relay for the harness's own tests: a misbehaving network between the harness and a SUT.

The relay is a process of its own (`python -m tests.relay CONFIG`, standard library only), so that what it does
with a datagram does not wait for the harness's threads (an in-process thread would share the GIL: a "back to
back" copy could leave milliseconds after its original). Clients send to the relay's address; it forwards each
datagram to the upstream server from a socket of its own per client (as a NAT does, so the server still tells
clients apart), and each answer back to its client from the address the client sent to. What the network does
is a policy:

- `copies`: how many times to deliver each datagram (2 duplicates it), `gap` seconds apart;
- `delays`: rules holding back the datagrams they match by `seconds`: direction ("up", client to server, or
  "down"), `kind` ("up" for user-plane data, or an EMSDP command code), `first_only`.

EMSDP kinds are read off the header with two numbers the parent takes from the binding (`emsdp_shape`): the bit
offset of the UP/CP flag and the octet offset of a control-plane command.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import selectors
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

UP, DOWN = "up", "down"
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Delivery:
    direction: str
    copy: int  # 0 the original, 1.. the copies
    delayed: float  # seconds it was held back beyond the original's arrival


@dataclass
class UdpRelay:
    """The parent's handle on a relay process: `address` to send to; `deliveries()` once it is closed."""

    upstream: tuple[str, int]
    copies: int = 1
    gap: float = 0.0
    delays: list[dict[str, Any]] = field(default_factory=list)
    host: str = "127.0.0.1"

    def __enter__(self) -> UdpRelay:
        config = {
            "upstream": list(self.upstream),
            "host": self.host,
            "copies": self.copies,
            "gap": self.gap,
            "delays": self.delays,
            "shape": emsdp_shape() if self.delays else None,
        }
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.relay", json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        line = self._process.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError("the relay process did not start")
        host, port = json.loads(line)
        self.address = (host, port)
        self._log: list[Delivery] | None = None
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._log is not None:
            return
        self._process.stdin.close()  # type: ignore[union-attr]  (the relay's signal to stop and report)
        out = self._process.stdout.read()  # type: ignore[union-attr]
        self._process.wait(timeout=10)
        self._log = [Delivery(*entry) for entry in json.loads(out or b"[]")]

    def deliveries(self, direction: str | None = None) -> list[Delivery]:
        """What the relay delivered (after close)."""
        if self._log is None:
            raise RuntimeError("the relay reports its deliveries once closed")
        return [d for d in self._log if direction in (None, d.direction)]


def duplicating(upstream: tuple[str, int], *, gap: float = 0.0) -> UdpRelay:
    """A relay that delivers every datagram twice, in both directions (the copy `gap` seconds after)."""
    return UdpRelay(upstream, copies=2, gap=gap)


def delaying(upstream: tuple[str, int], kind: str, seconds: float, *, first_only: bool = False) -> UdpRelay:
    """A relay that holds back the SUT's datagrams of one kind ("up", or a command name) by `seconds`."""
    return UdpRelay(upstream, delays=[{"direction": DOWN, "kind": kind, "seconds": seconds, "first_only": first_only}])


def emsdp_shape() -> dict[str, Any]:
    """What the relay needs to tell EMSDP kinds apart, from the default binding."""
    from conformance.binding import load_binding
    from conformance.emsdp.layout import Layout

    layout = Layout.from_binding(load_binding())
    return {
        "plane_bit": layout.bit_offset("up_cp", "cp", layout.default_scheme),
        "command_at": layout.header_bytes("cp", layout.default_scheme),
        "commands": dict(layout.commands),
    }


# ---- the relay process -------------------------------------------------------------------------------------


def _kind(data: bytes, shape: dict[str, Any]) -> str | None:
    bit, at = shape["plane_bit"], shape["command_at"]
    if len(data) * 8 <= bit:
        return None
    if data[bit // 8] >> (7 - bit % 8) & 1:
        return "up"
    if len(data) <= at:
        return None
    return next((name for name, code in shape["commands"].items() if code == data[at]), None)


def serve(config: dict[str, Any]) -> list[tuple[str, int, float]]:
    upstream = tuple(config["upstream"])
    host, copies, gap, rules, shape = (config[k] for k in ("host", "copies", "gap", "delays", "shape"))
    matched = [0] * len(rules)
    listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listen.bind((host, 0))
    listen.setblocking(False)
    towards: dict[tuple[str, int], socket.socket] = {}  # client -> its socket towards the server
    client_of: dict[socket.socket, tuple[str, int]] = {}
    selector = selectors.DefaultSelector()
    selector.register(listen, selectors.EVENT_READ)
    selector.register(sys.stdin, selectors.EVENT_READ)
    queue: list[tuple[float, int, socket.socket, bytes, Any, tuple[str, int, float]]] = []
    order = itertools.count()
    log: list[tuple[str, int, float]] = []
    print(json.dumps(listen.getsockname()), flush=True)

    def held(direction: str, data: bytes) -> float:
        for index, rule in enumerate(rules):
            if rule["direction"] != direction or _kind(data, shape) != rule["kind"]:
                continue
            matched[index] += 1
            if not rule.get("first_only") or matched[index] == 1:
                return float(rule["seconds"])
        return 0.0

    def forward(direction: str, data: bytes, out: socket.socket, to: Any) -> None:
        now = time.monotonic()
        hold = held(direction, data) if rules else 0.0
        for copy in range(copies):
            delay = hold + copy * gap
            heapq.heappush(queue, (now + delay, next(order), out, data, to, (direction, copy, delay)))
        send_due(now)

    def send_due(now: float) -> None:
        while queue and queue[0][0] <= now:
            _, _, out, data, to, entry = heapq.heappop(queue)
            try:
                out.sendto(data, to)
            except OSError:  # e.g. an ICMP error of an earlier datagram: a network just loses it
                continue
            log.append(entry)

    while True:
        now = time.monotonic()
        send_due(now)
        wait = min(0.05, queue[0][0] - now) if queue else 0.05
        for key, _ in selector.select(max(wait, 0)):
            sock = key.fileobj
            if sock is sys.stdin:
                if not os.read(sys.stdin.fileno(), 1024):  # the parent closed it: stop
                    return log
                continue
            while True:
                try:
                    data, source = sock.recvfrom(65535)  # type: ignore[union-attr]
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    continue
                if sock is listen:
                    out = towards.get(source)
                    if out is None:
                        out = towards[source] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        out.bind((host, 0))
                        out.setblocking(False)
                        client_of[out] = source
                        selector.register(out, selectors.EVENT_READ)
                    forward(UP, data, out, upstream)
                else:
                    forward(DOWN, data, listen, client_of[sock])  # type: ignore[index]


if __name__ == "__main__":
    sys.stdout.write(json.dumps(serve(json.loads(sys.argv[1]))))
    sys.stdout.flush()
