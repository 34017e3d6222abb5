"""Datagram hygiene: what the UE sends and reads, so that the network's doing is never charged to the SUT.

UDP may duplicate, delay and reorder. The UE hands out only datagrams that can be the answer it waits for, and
notes the others (`notes`, merged into the case's trace by `annotate_trace`):
- duplicate: an exact copy of a datagram received before in the case, when it cannot be a new message: a
  protected one (its counter is spent), a Session Start (its RAND is single-use), or any copy that came with no
  message of the UE in between. Only an unprotected copy that follows a new message of the UE (the same Message
  Reject for the same fault) is taken as a new answer.
- stale: a Session Start that arrived before the Session Request it would answer was sent, or a second one for
  a request already answered (same request checksum: the network duplicated the request); a Session Terminate
  Response that arrived before the Terminate Request; a message of a session the UE no longer uses; a Message
  Reject naming a command other than the UE's last message's; while listening for silence, anything that
  arrived before the UE's last message left.
- late: an answer after its window (within `late_grace`), or a datagram after a silence window that came before
  the UE's next message: `LateReply`, which the engine reports as not judged (inconclusive).
A duplicated Session Request makes a conformant HSE open a second session that supersedes the first: before it
first uses the session, the UE follows the newer answer (`followed`); if the answer comes after the UE used the
first session, what follows cannot be judged (`spoiled`).
Arrival times are the kernel's receive stamps (SO_TIMESTAMPNS), and the UE reads what already arrived before
each message it sends, so "arrived before the message left" is a fact, not a guess.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from conformance.crypto.aka import AutnCheck, AutnOutcome
from conformance.emsdp.fast import Message
from conformance.emsdp.values import tlv_values
from conformance.roles import timing
from conformance.roles.errors import LateReply
from conformance.roles.udp import UdpLink

if TYPE_CHECKING:
    from conformance.emsdp.codec import Codec
    from conformance.emsdp.layout import Layout

# What the notes call the datagrams the UE set aside, and what it did about a duplicated Session Request.
DUPLICATE, STALE, LATE, FOLLOWED, SUPERSEDED = "duplicate", "stale", "late", "followed", "superseded"
SILENCE = "silence"  # `receive(expecting=SILENCE)`: nothing may come

# The late grace: after a reply window, the UE listens a quarter of it more, at most half a second. A reply in
# that band is "late by N ms" (inconclusive: raise pixit.reply_timeout), not silence. Bounded, because a silent
# SUT pays it on every case it fails: +25 % on the default 2 s reply timeout.
LATE_GRACE_SHARE, LATE_GRACE_MAX = 0.25, 0.5

# After a Session Start, on a path seen duplicating, the UE waits for a second answer before it uses the session:
# twice the request's round trip (at least SETTLE_MIN) plus the longest delay seen between a datagram and its
# copy on that path, at most SETTLE_MAX (ns). The HSE answers the request's copy as soon as the copy reaches it.
SETTLE_MIN, SETTLE_MAX = 10_000_000, 250_000_000

# HSE endpoint -> the longest delay (ns) this process saw between a datagram and its network copy on that path
_DUPLICATING: dict[tuple[str, int], int] = {}
# HSE endpoint -> when the last Session Request left for it (any UE of this process). On a path that duplicates
# with delay D, a new Session Request waits until D after it: a late copy of an older request (of the case before,
# or the throwaway UE that reads the SQN) must not reach the HSE after the new session opened, and supersede it.
_LAST_REQUEST: dict[tuple[str, int], int] = {}


class SessionView(Protocol):
    """What the hygiene rules need of the UE's session (the UE role's `UeSession`): its id and counter
    scheme, and when the Session Start it comes from arrived (set when the UE follows a newer answer)."""

    id: int
    scheme: int
    opened: int


SessionT = TypeVar("SessionT", bound=SessionView)


class UeView(Protocol[SessionT]):
    """What `Datagrams` needs of the UE it serves (the UE role's `Ue`): its codec, layout and reply
    timeout, its session, and what it can tell of (or do with) a Session Start."""

    codec: Codec
    layout: Layout
    timeout: float
    session: SessionT | None

    def checksum_covers(self, packet: Message, request: bytes) -> bool | None: ...

    def sqn_of(self, packet: Message) -> int | None: ...

    def accept_session_start(self, packet: Message) -> AutnCheck: ...


def late_grace(window: float) -> float:
    """How long after `window` (seconds) an answer is still reported as late rather than as silence."""
    return min(window * LATE_GRACE_SHARE, LATE_GRACE_MAX)


@dataclass(eq=False)
class _Arrival:
    """A datagram the UE read: its bytes, sender, arrival (ns since the epoch, the kernel's stamp), decoding, and
    the header fields the hygiene rules look at (read once: scapy's attribute access costs ~1 µs a field)."""

    data: bytes
    source: Any
    at: int
    packet: Any = None
    plane: str | None = None  # cp, up, or None (not EMSDP)
    cmd: int | None = None
    key_id: int = 0
    session_id: int | None = None


@dataclass(eq=False)
class _Answer:
    """The Session Start the UE took as the answer to its request."""

    arrival: _Arrival
    session_id: int
    check: AutnCheck | None = None  # the USIM's verdict, once it ran
    used: bool = False  # the UE sent something on it (a confirmation, protected data, AUTS)
    settled: bool = False  # the UE already waited for a second answer to the request


@dataclass(eq=False)
class _Request:
    """The UE's last Session Request: what every answer's checksum covers, when it (or the AUTS asking for a new
    answer) left, and the answers seen."""

    raw: bytes
    sent: int
    answer: _Answer | None = None
    others: list[int] = field(default_factory=list)  # session ids of second answers


class Datagrams(Generic[SessionT]):
    """The UE's datagrams through its UDP link, with hygiene. It asks its UE (`UeView`) for the session (the
    counter scheme to decode with), for what a Session Start carries (which request its checksum covers, its SQN),
    and to accept the newer answer to a duplicated Session Request; the UE tells it when the USIM ran, a session
    opened, a session is about to be used and an AUTS left."""

    def __init__(self, ue: UeView[SessionT], link: UdpLink):
        self.ue = ue
        self.link = link
        self.hse = link.peer
        self.codec = ue.codec
        layout = ue.layout
        self.received_from: tuple[str, int] | None = None
        self.received_at: int | None = None  # arrival (ns since the epoch) of the last datagram handed out
        self.last_received: Message | None = None  # the last datagram handed out
        self.notes: list[dict[str, Any]] = []  # the datagrams set aside, and why: evidence for the case's trace
        self.unjudged: str | None = None  # a datagram came after a silence window, before the UE's next message
        self.spoiled: str | None = None  # the network duplicated the request of the session the UE was using
        self._seen: dict[bytes, int] = {}  # every datagram received -> arrival of its latest copy
        self._sends: list[int] = []  # when each message left, in order
        self._last_sent: tuple[int | None, int] = (None, 0)  # (command code, -1 for user data; when) of the last
        self._inbox: deque[_Arrival] = deque()  # read before a message left, not handed out yet
        self._request: _Request | None = None
        self._earlier: list[bytes] = []  # the Session Requests before the last
        self._auts_session: int | None = None  # the session the last AUTS asked to resynchronise
        self._terminate_sent = 0
        self._past: dict[int, str] = {}  # session id -> why the UE no longer uses it
        self._second: _Arrival | None = None  # a second answer to the request, to follow before using the session
        self._silence: tuple[int, str] | None = None  # (end, what) of the last silence window, until the next send
        self._duplicates_seen = False
        self.second_answers: list[tuple[int, int]] = []  # (arrival, session id) of second answers to a request
        self.superseded: dict[int, SessionT] = {}  # sessions the UE left for the HSE's answer to a duplicate
        self._names = layout.command_names()
        self._codes = layout.commands
        self._session_start = self._codes["session_start"]
        self._message_reject = self._codes.get("message_reject")
        self._terminate_response = self._codes.get("session_terminate_response")
        self._layout = layout
        self._plane_bit = layout.bit_offset("up_cp", "cp", layout.default_scheme)
        schemes = layout.schemes
        self._shapes = {(p, scheme): self._header_shape(p, scheme) for p in ("cp", "up") for scheme in schemes}

    # ---- sending and reading -------------------------------------------------------------------------

    def send(self, raw: bytes) -> bool:
        """Send a message to the HSE, after reading what already arrived (`drain`: none of it can answer this).
        On a path seen duplicating, every message first waits out the answers to the copies of the one before (a
        Session Request: of the last one any UE sent to this HSE), so that such an answer comes before this
        message leaves and is known for a copy, not taken for the answer to this one. Whether the message is a
        Session Request."""
        self.drain()
        code, session_id = self._peek(raw)
        request = code == self._codes["session_request"] and session_id == 0
        if self.hse in _DUPLICATING:
            before = _LAST_REQUEST.get(self.hse, 0) if request else self._last_sent[1]
            self._quiet(before + _DUPLICATING[self.hse] + SETTLE_MIN)
        now = self.link.send(raw)
        self._sends.append(now)
        self._last_sent = (code, now)
        self._silence = None  # the next step acted: from now on a datagram may answer this message
        if request:
            if self._request is not None:
                self._earlier.append(self._request.raw)
            self._request = _Request(raw, now)
            _LAST_REQUEST[self.hse] = now
        elif code == self._codes.get("session_terminate_request"):
            self._terminate_sent = now
        return request

    def receive(
        self, timeout: float | None = None, *, grace: float = 0.0, expecting: str | None = None
    ) -> Message | None:
        """The next datagram that can be the answer the UE waits for, decoded with the session's counter scheme;
        None on silence. Duplicates and stale replies are noted and skipped, and the wait goes on.

        expecting: what the caller waits for (a command name, "up", or SILENCE: then anything that arrived
        before the UE's last message left is set aside, since it cannot be a reaction to it).
        grace: listen this much longer; an answer in that band raises LateReply ("late by N ms"), not silence.
        A datagram seen after a silence window and before the UE's next message raises LateReply here."""
        if self.unjudged is not None:
            reason, self.unjudged = self.unjudged, None
            raise LateReply(reason)
        window = self.ue.timeout if timeout is None else timeout
        deadline = time.time_ns() + round(window * 1e9)
        end = deadline + round(grace * 1e9)
        while True:
            arrival = self._next(end)
            if arrival is None:
                return None
            if not self._fits(arrival, expecting):
                continue
            if arrival.at > deadline:
                late = (arrival.at - deadline) / 1e6
                text = (
                    f"the {self._what(arrival)} arrived {late:.0f} ms after the {window * 1000:.0f} ms reply "
                    f"window (late by {late:.0f} ms): not silence, but not an answer in time either; a slow SUT or "
                    "network cannot be judged, raise pixit.reply_timeout"
                )
                self._note(arrival, LATE, text)
                raise LateReply(text)
            self.received_from, self.received_at, self.last_received = arrival.source, arrival.at, arrival.packet
            if expecting != SILENCE and self._last_sent[1] and arrival.at > self._last_sent[1]:
                timing.record(self.hse, (arrival.at - self._last_sent[1]) / 1e9)  # a round trip of this path
            request = self._request
            if request is not None and request.answer is None and self._is_start(arrival):
                request.answer = _Answer(arrival, arrival.session_id or 0)
            return arrival.packet

    def expect_silence(self, window: float, what: str = "the silence window") -> Message | None:
        """Listen for `window` seconds: the first datagram that can be a reaction to the UE's last message, or
        None. Then, until the UE's next message, a datagram that comes makes the silence not judged (the next
        `receive` raises LateReply)."""
        packet = self.receive(window, expecting=SILENCE)
        if packet is None:
            self._silence = (time.time_ns(), what)
        return packet

    def drain(self) -> None:
        """Read, without waiting, what already arrived: duplicates and stale replies are noted and dropped, the
        rest kept for `receive`. Before each message the UE sends, so that what arrived before it is known."""
        while self.link.ready(0):
            arrival = self._read(None)
            if arrival is None:
                return
            if self._screen(arrival):
                self._watch_silence(arrival)
                self._inbox.append(arrival)

    def listen(self, seconds: float) -> None:
        """Read what arrives for `seconds`, handing nothing out: duplicates and stale replies are noted, the rest
        kept for `receive`. After a failure, it shows whether the path duplicates (`path_duplicates`)."""
        self._quiet(time.time_ns() + round(seconds * 1e9))

    def check_judged(self) -> None:
        """Raise LateReply if a datagram came after a silence window before the next step acted."""
        self.drain()
        if self.unjudged is not None:
            reason, self.unjudged = self.unjudged, None
            raise LateReply(reason)

    @property
    def held_session(self) -> int | None:
        """The session the UE's answer, else its AUTS, names (for a UE with no open session)."""
        if self._request is not None and self._request.answer is not None:
            return self._request.answer.session_id
        return self._auts_session

    @property
    def path_duplicates(self) -> bool:
        """Whether this UE, or another of this process, saw the network duplicate datagrams towards the HSE."""
        return self._duplicates_seen or self.hse in _DUPLICATING

    def _quiet(self, until: int) -> None:
        """Wait until `until` (ns), reading what arrives meanwhile."""
        while (left := until - time.time_ns()) > 0:
            if self.link.ready(left / 1e9):
                self.drain()

    def _read(self, timeout: float | None) -> _Arrival | None:
        """One datagram, waiting up to `timeout` (None: it is known to be there); None on timeout."""
        got = self.link.read(timeout)
        return None if got is None else _Arrival(*got)

    def _next(self, end: int) -> _Arrival | None:
        """The next datagram read ahead or arriving before `end` (ns) that passes `_screen`."""
        while True:
            if self._inbox:
                return self._inbox.popleft()
            left = (end - time.time_ns()) / 1e9
            if left <= 0:
                return None
            arrival = self._read(left)
            if arrival is None:
                return None
            if self._screen(arrival):
                return arrival

    # ---- what the UE tells it ------------------------------------------------------------------------

    def usim_ran(self, packet: Message, check: AutnCheck) -> None:
        """The USIM's verdict on a Session Start: kept with the answer to the request, if it is that."""
        request = self._request
        if request is not None and request.answer is not None and request.answer.arrival.packet is packet:
            request.answer.check = check

    def session_opened(self, session_id: int, previous: int | None) -> None:
        """The UE opened a session, leaving `previous` (its session until now, if any): what comes on that is
        stale from now on."""
        if previous is not None and previous != session_id:
            self._past[previous] = f"replaced by session {session_id}"
        self._past.pop(session_id, None)

    def using(self, session_id: int) -> None:
        """The UE is about to send on a session (after `follow_answer`): the answer it came from is used."""
        request = self._request
        if request is not None and request.answer is not None and request.answer.session_id == session_id:
            request.answer.used = True

    def auts_to_send(self, auts: bytes, session_id: int) -> tuple[bytes, int]:
        """The AUTS the UE is about to send, and the session it names: if the UE followed a newer answer to its
        request (the network duplicated it), that answer's AUTS, on its session. The answer counts as used."""
        self.follow_answer()
        request = self._request
        answer = request.answer if request is not None else None
        followed = answer is not None and answer.session_id != session_id and session_id in self._past
        if followed and answer.check is not None and answer.check.auts:
            auts, session_id = answer.check.auts, answer.session_id
        if answer is not None:
            answer.used = True
        return auts, session_id

    def auts_sent(self, session_id: int) -> None:
        """The AUTS left: the HSE answers it with a new Session Start for the same request."""
        self._auts_session = session_id
        request = self._request
        if request is not None:
            request.sent, request.answer = self._last_sent[1], None

    # ---- the rules -----------------------------------------------------------------------------------

    def _screen(self, arrival: _Arrival) -> bool:
        """Whether a datagram just read can be an answer at all; duplicates and stale ones are noted."""
        data, at = arrival.data, arrival.at
        previous = self._seen.get(data)
        self._seen[data] = at
        session = self.ue.session
        packet = arrival.packet = self.codec.decode(data, session.scheme if session else None)
        fields = getattr(packet, "fields", {})
        arrival.plane = getattr(packet, "plane", None)
        arrival.cmd, arrival.key_id = fields.get("cmd"), fields.get("key_id") or 0
        arrival.session_id = fields.get("session_id")
        if previous is not None and (not self._sent_between(previous, at) or self._single_use(arrival)):
            self._duplicated(at - previous)
            self._note(
                arrival,
                DUPLICATE,
                f"an exact copy of the {self._what(arrival)} received {(at - previous) / 1e6:.1f} ms before: a "
                "network duplicate, not a new message",
            )
            return False
        if self._is_start(arrival):
            return not self._second_answer(arrival)
        session_id = arrival.session_id
        if session_id and session_id in self._past:  # 0 is "no session": unprotected rejects carry it
            self._note(
                arrival,
                STALE,
                f"a {self._what(arrival)} of session {session_id}, which the UE no longer uses "
                f"({self._past[session_id]})",
            )
            return False
        return True

    def _fits(self, arrival: _Arrival, expecting: str | None) -> bool:
        """Whether a datagram that passed `_screen` can answer what the UE waits for now."""
        at = arrival.at
        if self._is_start(arrival):
            request = self._request
            if request is not None and at < request.sent:
                self._note(
                    arrival,
                    STALE,
                    f"a Session Start (session {arrival.session_id}) that arrived {(request.sent - at) / 1e6:.1f} ms "
                    "before the Session Request it would answer left: the answer to an earlier request",
                )
                return False
            if self._second_answer(arrival):
                return False
        elif arrival.cmd == self._terminate_response and arrival.plane == "cp" and at < self._terminate_sent:
            self._note(
                arrival,
                STALE,
                "a Session Terminate Response that arrived before the Terminate Request it would answer left",
            )
            return False
        rejected = self._rejected(arrival)
        code, sent = self._last_sent
        if rejected is not None and code is not None and rejected != code:
            self._note(
                arrival,
                STALE,
                f"a Message Reject of a {self._name(rejected)} while the UE's last message is a {self._name(code)}: "
                "not the answer to it (it rejects an earlier message, or a copy the network made)",
            )
            return False
        if expecting == SILENCE and at < sent:
            self._note(
                arrival,
                STALE,
                f"a {self._what(arrival)} that arrived {(sent - at) / 1e6:.1f} ms before the UE's last message left: "
                "not a reaction to it",
            )
            return False
        return True

    def _second_answer(self, arrival: _Arrival) -> bool:
        """Whether a Session Start answers, a second time, the request the UE already has an answer for (the
        network duplicated the request): noted, and followed or reported before the UE uses its session."""
        request = self._request
        if request is None or (request.answer is not None and request.answer.arrival is arrival):
            return False
        packet = arrival.packet
        answers = self.ue.checksum_covers(packet, request.raw)
        if answers is False and any(self.ue.checksum_covers(packet, earlier) for earlier in self._earlier):
            self._duplicated(0)
            text = (
                f"a Session Start (session {arrival.session_id}) that answers an earlier Session Request of this UE: "
                "the network delivered a copy of that request late"
            )
            if request.answer is not None:  # answered after the current session opened: it superseded that one
                text += (
                    f", after session {request.answer.session_id} opened, and a conformant HSE lets the newer "
                    f"session supersede session {request.answer.session_id}"
                )
                self.spoiled = self.spoiled or text
            self._note(arrival, STALE, text)
            return True
        if request.answer is None:
            return False
        if answers is False or (answers is None and self._sent_between(request.answer.arrival.at, arrival.at)):
            return False  # a Session Start for something else: the caller judges it
        first = request.answer
        request.others.append(arrival.session_id)
        self.second_answers.append((arrival.at, arrival.session_id))
        self._duplicated(arrival.at - first.arrival.at)
        self._note(
            arrival,
            STALE,
            f"a second Session Start (session {arrival.session_id}) for the Session Request that session "
            f"{first.session_id} already answered: the request reached the HSE twice (a network duplicate) and the "
            "HSE answered each copy",
        )
        if first.used:
            self._supersede(arrival, first)
        else:
            self._second = arrival
        return True

    def _supersede(self, arrival: _Arrival, first: _Answer, why: str = "") -> None:
        text = (
            f"the HSE answered the Session Request a second time (session {arrival.session_id}) after the UE "
            f"had used session {first.session_id}{why}: the network duplicated the request, and the newer session "
            f"superseded session {first.session_id}, so what the UE sent on it since is lost and what follows on it "
            "cannot be judged"
        )
        self.spoiled = self.spoiled or text
        self._note(arrival, SUPERSEDED, text)

    def follow_answer(self) -> None:
        """Once the USIM ran on a Session Start, before anything uses its session: if the network duplicated the
        Session Request, the HSE answered twice and kept only the newer session; follow it. On a path seen
        duplicating, wait a little for that second answer (SETTLE_MIN..SETTLE_MAX); else just read what
        already arrived. Idempotent; the UE does it itself before it first sends on the session."""
        request = self._request
        if request is None or request.answer is None or request.answer.used:
            return
        first = request.answer
        if first.check is None:  # the USIM never ran on it: the UE has no session of it to follow from
            return
        self.drain()  # e.g. the answer's own copy, right behind it: evidence that this path duplicates
        if not first.settled and (self._duplicates_seen or self.hse in _DUPLICATING):
            wait = max(2 * (first.arrival.at - request.sent), SETTLE_MIN) + _DUPLICATING.get(self.hse, 0)
            until = first.arrival.at + min(wait, SETTLE_MAX)
            while self._second is None and (left := until - time.time_ns()) > 0:
                if self.link.ready(left / 1e9):
                    self.drain()
            first.settled = True
        self.drain()
        second, self._second = self._second, None
        if second is None:
            return
        newer, older = self.ue.sqn_of(second.packet), self.ue.sqn_of(first.arrival.packet)
        if newer is None or older is None or newer <= older:
            self._note(second, STALE, f"the UE keeps session {first.session_id}: this answer's SQN is not newer")
            return
        left = self.ue.session
        check = self.ue.accept_session_start(second.packet)
        if check.outcome not in (AutnOutcome.OK, AutnOutcome.SYNCH_FAILURE):
            self._supersede(second, first, f" (its AUTN is refused: {check.outcome.value})")
            first.used = True
            return
        session_id = second.session_id or 0
        session = self.ue.session
        if session is not None and session.id == session_id:
            session.opened = second.at
        if left is not None and left.id == first.session_id:
            self.superseded[left.id] = left  # e.g. the key server may still push its KInt_EAS_PSK
        self._past[first.session_id] = f"the HSE superseded it with session {session_id}, its answer to a duplicate"
        self._past.pop(session_id, None)
        request.answer = _Answer(second, session_id, check, settled=True)
        self._note(
            second,
            FOLLOWED,
            f"the UE follows session {session_id}, the one the HSE kept: it superseded session {first.session_id}, "
            "which the UE had not used yet",
        )

    def _watch_silence(self, arrival: _Arrival) -> None:
        if self._silence is None or arrival.at <= self._silence[0]:
            return
        after = (arrival.at - self._silence[0]) / 1e6
        text = (
            f"a {self._what(arrival)} arrived {after:.0f} ms after {self._silence[1]} ended, before the case's "
            "next step acted: the SUT (or the network) may have answered, late, the message it had to discard; the "
            "silence is not judged"
        )
        self._note(arrival, LATE, text)
        self.unjudged = self.unjudged or text

    def _sent_between(self, first: int, then: int) -> bool:
        """Whether a message left the UE between two arrivals."""
        return bisect.bisect_right(self._sends, first) < bisect.bisect_left(self._sends, then)

    def _single_use(self, arrival: _Arrival) -> bool:
        """A message that is never sent twice alike: protected (its counter is spent once) or a Session Start
        (its RAND is fresh)."""
        return bool(arrival.key_id) or arrival.plane == "up" or self._is_start(arrival)

    def _is_start(self, arrival: _Arrival) -> bool:
        return arrival.cmd == self._session_start and arrival.plane == "cp"

    def _rejected(self, arrival: _Arrival) -> int | None:
        """The command a Message Reject names (its rejected_command TLV), if any."""
        if arrival.cmd != self._message_reject or arrival.plane != "cp":
            return None
        value = tlv_values(arrival.packet).get("rejected_command")
        return value[0] if value else None

    def _duplicated(self, delay: int) -> None:
        """The network duplicates on this path; `delay` (ns) between a datagram and its copy."""
        self._duplicates_seen = True
        _DUPLICATING[self.hse] = max(_DUPLICATING.get(self.hse, 0), min(delay, SETTLE_MAX))

    # ---- reading headers, naming, noting -------------------------------------------------------------

    def _header_shape(self, plane: str, scheme: int) -> tuple[int, int, int]:
        """(header octets, shift, mask) to read the Session ID from a header as one integer."""
        layout = self._layout
        size = layout.header_bytes(plane, scheme)
        offset = layout.bit_offset("session_id", plane, scheme)
        width = layout.field_bits.get("session_id", 0)
        if offset is None or not width:
            return size, 0, 0
        return size, size * 8 - offset - width, (1 << width) - 1

    def _peek(self, raw: bytes) -> tuple[int | None, int | None]:
        """(command code, or -1 for user data; Session ID) of a message the UE sends, read off its header
        without dissecting it (sending is the latency path). (None, None) if it cannot be read."""
        bit = self._plane_bit
        if bit is None or len(raw) * 8 <= bit:
            return None, None
        plane = "up" if raw[bit // 8] >> (7 - bit % 8) & 1 else "cp"
        session = self.ue.session
        current = session.id if session else 0
        default = self._layout.default_scheme
        for scheme in dict.fromkeys((session.scheme if session else default, default)):
            size, shift, mask = self._shapes[plane, scheme]
            if len(raw) < size + (plane == "cp"):
                continue
            session_id = int.from_bytes(raw[:size], "big") >> shift & mask
            if session_id in (0, current):
                return (-1 if plane == "up" else raw[size]), session_id
        return None, None

    def _name(self, code: int) -> str:
        return "user data message" if code == -1 else self._names.get(code, f"command {code:#04x}")

    def _what(self, arrival: _Arrival) -> str:
        if arrival.plane == "up":
            return "user data"
        if arrival.plane == "cp" and arrival.cmd is not None:
            return self._names.get(arrival.cmd, f"command {arrival.cmd:#04x}")
        return "datagram (not EMSDP)"

    def _note(self, arrival: _Arrival, kind: str, description: str) -> None:
        self.notes.append(
            {
                "time": arrival.at / 1_000_000_000,
                "ns": arrival.at,
                "kind": kind,
                "description": description,
                "octets": len(arrival.data),
                "from": f"{arrival.source[0]}:{arrival.source[1]}",
            }
        )


def annotate_trace(items: list[dict[str, Any]], notes: Iterable[Mapping[str, Any]]) -> None:
    """Put each UE note (duplicate, stale, late, followed, superseded) on the traced datagram it is about, as
    `hygiene`: the one with the note's arrival time (the tap records the kernel's stamp) and size. A note that
    matches no traced datagram (nothing captured) becomes an entry of its own."""
    by_time: dict[int, list[dict[str, Any]]] = {}
    for item in items:
        if "src" in item and isinstance(item.get("time"), int | float):
            by_time.setdefault(round(item["time"] * 1e6), []).append(item)
    for note in notes:
        entry = {"kind": note["kind"], "description": note["description"]}
        micros = round(note["time"] * 1e6)
        near = (i for m in (micros, micros - 1, micros + 1) for i in by_time.get(m, ()))
        target = next((i for i in near if i.get("octets") == note.get("octets")), None)
        if target is None:
            items.append({"time": note["time"], "hygiene": [entry]})
        else:
            target.setdefault("hygiene", []).append(entry)
