"""Datagram hygiene for the harness's HSE (towards a UE under test): what it reads, so that the network's doing, or
what the UE sent before the case began, is never charged to the UE.

The HSE's socket lives for the whole run (the UE is configured with one address), each case taps it into its own
pcap (`attach`). It hands out only datagrams that can be the UE's reaction to what the case did, and notes the
others (`notes`, merged into the case's trace by `annotate_trace`, as the UE role's are):
- stale: queued before the case began (the case before's leftovers); a message of a session the HSE no longer
  uses; while listening for silence, anything that arrived before the case's last action (a message of the HSE,
  or a trigger) took place.
- duplicate: an exact copy of a datagram received before in the case, when it cannot be a new message: protected
  (its counter is spent), or any copy with no action of the case in between. A Session Request (unprotected, and
  alike each time for an IMSI) counts as new only after a trigger: a conformant UE asks for a session when told.
- late: an answer after its window (within `late_grace`), or a datagram after a silence window that came before
  the case's next action: `LateReply`, which the engine reports as not judged (inconclusive).
Arrival times are the kernel's receive stamps (SO_TIMESTAMPNS), as for the UE role (`UdpLink`).
"""

from __future__ import annotations

import bisect
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from conformance.capture.tap import PcapTap
from conformance.emsdp.codec import Codec
from conformance.emsdp.fast import Message
from conformance.roles.datagrams import DUPLICATE, LATE, SILENCE, STALE
from conformance.roles.errors import LateReply
from conformance.roles.udp import UdpLink


class HseDatagrams:
    """The bound socket of the harness's HSE, with hygiene. `decode` reads a datagram with the counter scheme of
    the session it names; `past` says why the HSE no longer uses a session (None: it does)."""

    def __init__(
        self,
        codec: Codec,
        host: str,
        port: int,
        decode: Callable[[bytes], Message],
        past: Callable[[int], str | None],
    ):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((host, port))
        self.address: tuple[str, int] = sock.getsockname()[:2]
        self.link = UdpLink(self.address, None, 1.0, sock=sock)  # peer: the UE, once it sent; each read says how long
        self.codec = codec
        self.on_round_trip: Callable[[float], None] | None = None  # from a message of the HSE to the UE's answer
        self._decode, self._past = decode, past
        self._names = codec.layout.command_names()
        self._request = codec.layout.commands["session_request"]
        self.notes: list[dict[str, Any]] = []
        self.ue: tuple[str, int] | None = None  # where the UE under test sends from (its last datagram's source)
        self.received_at: int | None = None  # arrival (ns since the epoch) of the last datagram handed out
        self._reset()

    def _reset(self) -> None:
        self._seen: dict[bytes, int] = {}
        self._acts: list[int] = []  # when each message of the HSE left, or a trigger fired, in order
        self._triggers: list[int] = []
        self._inbox: deque[tuple[bytes, Any, int, Message]] = deque()
        self._silence: tuple[int, str] | None = None
        self.unjudged: str | None = None

    # ---- a case at a time ----------------------------------------------------------------------------

    def attach(self, tap: PcapTap | None) -> None:
        """A case begins: record into its pcap; what the UE sent before is set aside (noted), never its answer."""
        self.link.retap(None)
        self._reset()
        self.notes = []
        started = time.time_ns()
        while self.link.ready(0):
            got = self.link.read(None)
            if got is not None:
                self._note(got[0], got[1], got[2], STALE, "sent before the case began: not a reaction to it")
        self.link.retap(tap)
        self._acts.append(started)

    def detach(self) -> None:
        self.link.retap(None)

    def close(self) -> None:
        self.link.sock.close()

    # ---- acting and reading --------------------------------------------------------------------------

    def send(self, raw: bytes, to: tuple[str, int] | None = None) -> None:
        """Send to the UE (its last known address unless `to`), after reading what already arrived."""
        self.drain()
        target = to or self.ue
        if target is None:
            raise LookupError("no UE has sent anything to the harness's HSE yet: no address to send to")
        self.link.peer = target
        self._acted(self.link.send(raw))

    def triggered(self) -> None:
        """A trigger is about to make the UE act: what arrived before cannot be its reaction."""
        self.drain()
        now = time.time_ns()
        self._triggers.append(now)
        self._acted(now)

    def _acted(self, at: int) -> None:
        self._acts.append(at)
        self._silence = None

    def receive(self, timeout: float, *, grace: float = 0.0, expecting: str | None = None) -> Message | None:
        """The next datagram that can be the UE's reaction, or None on silence. expecting: a command name, "up",
        or SILENCE (then what arrived before the last action is set aside). An answer within `grace` after the
        window raises LateReply, as does a datagram seen after a silence window before the case acted again."""
        if self.unjudged is not None:
            reason, self.unjudged = self.unjudged, None
            raise LateReply(reason)
        deadline = time.time_ns() + round(timeout * 1e9)
        end = deadline + round(grace * 1e9)
        while True:
            arrival = self._next(end)
            if arrival is None:
                return None
            data, source, at, packet = arrival
            last = self._acts[-1] if self._acts else 0
            if expecting == SILENCE and at < last:
                self._note(data, source, at, STALE, "arrived before the case's last action: not a reaction to it")
                continue
            if at > deadline:
                late = (at - deadline) / 1e6
                text = (
                    f"the {self._what(packet)} arrived {late:.0f} ms after the {timeout * 1000:.0f} ms window (late "
                    f"by {late:.0f} ms): not silence, but not an answer in time either; raise pixit.reply_timeout"
                )
                self._note(data, source, at, LATE, text)
                raise LateReply(text)
            self.ue, self.received_at = source[:2], at
            if expecting != SILENCE and at > last and self.on_round_trip is not None:
                self.on_round_trip((at - last) / 1e9)
            return packet

    def expect_silence(self, window: float, what: str) -> Message | None:
        """Listen for `window` seconds: the first datagram that can be a reaction, or None. Until the case acts
        again, a datagram that comes makes the silence not judged (the next `receive` raises LateReply)."""
        packet = self.receive(window, expecting=SILENCE)
        if packet is None:
            self._silence = (time.time_ns(), what)
        return packet

    def drain(self) -> None:
        """Read, without waiting, what already arrived: kept for `receive` unless hygiene sets it aside."""
        while self.link.ready(0):
            got = self.link.read(None)
            if got is None:
                return
            arrival = self._screen(*got)
            if arrival is not None:
                self._watch_silence(arrival)
                self._inbox.append(arrival)

    def check_judged(self) -> None:
        """Raise LateReply if a datagram came after a silence window before the case acted again."""
        self.drain()
        if self.unjudged is not None:
            reason, self.unjudged = self.unjudged, None
            raise LateReply(reason)

    # ---- the rules -----------------------------------------------------------------------------------

    def _next(self, end: int) -> tuple[bytes, Any, int, Message] | None:
        while True:
            if self._inbox:
                return self._inbox.popleft()
            left = (end - time.time_ns()) / 1e9
            if left <= 0:
                return None
            got = self.link.read(left)
            if got is None:
                return None
            arrival = self._screen(*got)
            if arrival is not None:
                return arrival

    def _screen(self, data: bytes, source: Any, at: int) -> tuple[bytes, Any, int, Message] | None:
        """The datagram decoded, or None if it cannot be a message of the UE's (noted)."""
        previous = self._seen.get(data)
        self._seen[data] = at
        packet = self._decode(data)
        header = packet.header
        # a Session Request opens a session whatever Session ID its header names (a wrong one is for a check to see)
        request = packet.plane == "cp" and packet.command == self._request
        protected = packet.plane == "up" or bool(header.get("key_id"))
        between = previous is not None and self._between(self._triggers if request else self._acts, previous, at)
        if previous is not None and (protected or not between):
            what = f"an exact copy of the {self._what(packet)} received {(at - previous) / 1e6:.1f} ms before"
            self._note(data, source, at, DUPLICATE, f"{what}: a network duplicate, not a new message")
            return None
        session_id = header.get("session_id")
        why = self._past(session_id) if session_id and not request else None
        if why is not None:
            what = f"a {self._what(packet)} of session {session_id}"
            self._note(data, source, at, STALE, f"{what}, which the HSE no longer uses ({why})")
            return None
        return data, source, at, packet

    def _watch_silence(self, arrival: tuple[bytes, Any, int, Message]) -> None:
        data, source, at, packet = arrival
        if self._silence is None or at <= self._silence[0]:
            return
        text = (
            f"a {self._what(packet)} arrived {(at - self._silence[0]) / 1e6:.0f} ms after {self._silence[1]} "
            "ended, before the case's next step acted: the UE may have reacted, late; the silence is not judged"
        )
        self._note(data, source, at, LATE, text)
        self.unjudged = self.unjudged or text

    @staticmethod
    def _between(times: list[int], first: int, then: int) -> bool:
        return bisect.bisect_right(times, first) < bisect.bisect_left(times, then)

    def _what(self, packet: Message) -> str:
        if packet.plane == "up":
            return "user data"
        if packet.plane == "cp":
            return self._names.get(packet.command, f"command {packet.command}")
        return "datagram (not EMSDP)"

    def _note(self, data: bytes, source: Any, at: int, kind: str, description: str) -> None:
        self.notes.append(
            {
                "time": at / 1e9,
                "ns": at,
                "kind": kind,
                "description": description,
                "octets": len(data),
                "from": f"{source[0]}:{source[1]}",
            }
        )
