"""Stateful, structure-aware fuzzing of an HSE's EMSDP interface (issue 17): a Hypothesis RuleBasedStateMachine
that plays the harness's UE role (roles/ue.py) and builds every mutation with the binding's codec.

One example is a fresh UE (its own socket) doing a short random sequence of rules:

    start              Session Request, Session Start accepted by the USIM, Start Confirmation (the preamble)
    user_data          valid UP data; the echo must come (where the session echoes: UE-to-HSE, a UP service)
    manage_keys        valid empty Manage Keys Request; the HSE's Manage Keys Request opens "Manage Keys pending"
    answer_manage_keys the USIM's answer to it (RES, or AUTS)
    terminate          valid Terminate Request; the Terminate Response ends the session
    any_command        any command of the binding (and one it does not define), valid MAC, in whatever state
    forged             a command under a corrupt MAC, another Key ID (stale 0 or a future one) or a stale counter
    malformed          a protected command, then a structure-aware mutation of its octets (the MAC left as it was)
    mutated_request    a Session Request (from a second UE and subscriber) mutated: TLV length 0 / off by one /
                       maximal, unknown and repeated tags, a missing TLV, wrong value sizes, bit flips,
                       truncation, oversize

Oracles: a forged or malformed message is not acted on (the answer is the binding's Message Reject or silence,
and the next valid message finds the session as it was: `no_action_on_forged`); after every example the SUT
still serves (a fresh UE completes a session: `still_serves`). A failure raises `OracleFailed` carrying the
example's steps in the engine's shapes, so Hypothesis shrinks the sequence and the last (shrunk) failure is one
replayable case (findings.py). Forged messages are engine options (`mac: corrupt`, `key_id`, `counter`);
mutated octets are `send: raw` with their hex: a mutated Session Request replays exactly, a mutated protected
message replays as octets of the fuzzed session (a replay rejects them for the session or the MAC: they must not
be acted on either way).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.errors import Flaky, FlakyStrategyDefinition
from hypothesis.reporting import with_reporter
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from conformance.crypto.aka import AutnOutcome
from conformance.fuzz.findings import Finding, FuzzReport
from conformance.profile import LoadedProfile
from conformance.roles.errors import NotJudgeable, PortUnreachable, ProtocolError
from conformance.roles.timing import Timing
from conformance.roles.ue import Credentials, Ue

INTERFACE = "emsdp"
DEFAULT_EXAMPLES = 100
STEPS_PER_EXAMPLE = 12  # rules per example at most (Hypothesis' stateful_step_count)
REFERENCE_WINDOW = 0.02  # s of silence that stand for "not acted on" against a reference on this host
REFERENCE_TIMEOUT = 0.3  # s a reference on this host may take to answer a valid message
SHRINK_SECONDS = 20.0  # at most, for Hypothesis to shrink the failures of one run
# Hypothesis replays a sequence to shrink it; a SUT whose answers depend on timing may take the replay into
# another state, which Hypothesis refuses (FlakyStrategyDefinition): that chunk of examples ends there
DIVERGED = "the SUT answered a replayed sequence otherwise (timing), so Hypothesis stopped after {examples} examples"
TIME_CHUNK = 25  # examples per Hypothesis run under a time budget (then the next seed, while time is left)

# what a UE sends (the binding's other commands are the HSE's: sent by a UE they are "every command in every state")
UE_COMMANDS = (
    "session_terminate_request",
    "manage_keys_request",
    "manage_keys_response",
    "session_start_confirmation",
    "session_terminate_response",
)
FORGERY_WORDS = {
    "mac": "a corrupt MAC",
    "key_id_stale": "a stale Key ID",
    "key_id_future": "a future Key ID",
    "counter_stale": "a counter already used",
}
FORGERIES = tuple(FORGERY_WORDS)
# structure-aware mutations, simplest first (Hypothesis shrinks towards the front)
TLV_MUTATIONS = (
    "length_zero",
    "length_plus_one",
    "length_minus_one",
    "length_max",
    "value_longer",
    "value_shorter",
    "missing",
    "repeated",
    "unknown_tag",
)
OCTET_MUTATIONS = ("bit_flip", "truncate", "oversize")
MUTATIONS = TLV_MUTATIONS + OCTET_MUTATIONS


class OracleFailed(AssertionError):
    """An oracle failed: which, one line for the vendor, and the example's steps so far (engine case steps)."""

    def __init__(self, oracle: str, summary: str, steps: list[dict[str, Any]]):
        super().__init__(f"{oracle}: {summary}")
        self.oracle, self.summary, self.steps = oracle, summary, [dict(s) for s in steps]


@dataclass
class Target:
    """The HSE under fuzzing. `profile` points at it (endpoints.hse); `restart`, if given, brings up a fresh one
    (an embedded reference) and returns its profile: after a crash, every example starts from a live SUT, so
    Hypothesis can shrink. An external SUT has none: a crash found is reported as found, unshrunk."""

    profile: LoadedProfile
    restart: Callable[[], LoadedProfile] | None = None
    window: float | None = None  # s of silence that stand for "not acted on"; default the PIXIT's reply timeout
    timeout: float | None = None  # s a valid message's answer may take; default the PIXIT's reply timeout
    dead: bool = False  # the last example found it not serving

    @property
    def silence(self) -> float:
        """The window given, else the profile's: its silence_window, or measured from the SUT's round trips
        (pixit.timing: measured), else the reply timeout (roles/timing.py)."""
        return self.window if self.window is not None else timing_of(self.profile).silence(None)

    @property
    def reply_timeout(self) -> float:
        return self.timeout if self.timeout is not None else self.profile.pixit.reply_timeout

    def ensure_alive(self) -> None:
        if self.dead and self.restart is not None:
            self.profile = self.restart()
            self.dead = False


@dataclass
class Run:
    """What the machine of one fuzz run shares across examples."""

    target: Target
    seed: int
    deadline: float | None = None  # monotonic time after which no new example starts (a --time budget)
    examples: int = 0
    failed: bool = False  # a failure was seen: shrinking must not be cut by the time budget
    started: float = field(default_factory=time.monotonic)
    first_found: tuple[int, float] | None = None  # (examples, seconds) when the first failure was seen
    log: list[str] = field(default_factory=list)


def timing_of(profile: LoadedProfile, timeout: float | None = None) -> Timing:
    pixit = profile.pixit
    reply = pixit.reply_timeout if timeout is None else timeout
    return Timing(profile.hse_endpoint, reply, pixit.silence_window, pixit.timing == "measured")


def make_ue(profile: LoadedProfile, subscriber: int, timeout: float) -> Ue:
    credentials = Credentials.from_subscriber(profile.pixit.subscribers[subscriber])
    return Ue(
        profile.binding,
        credentials,
        profile.hse_endpoint,
        snn=profile.pixit.serving_network_name,
        sn_id=profile.pixit.serving_network_id,
        eas_id=profile.pixit.eas_id,
        timeout=timeout,
        timing=timing_of(profile, timeout),
    )


class EmsdpMachine(RuleBasedStateMachine):
    """One example: a fresh UE against the target. `run` is set on a subclass per fuzz run (machine_for)."""

    run: Run

    def __init__(self) -> None:
        super().__init__()
        run = self.run
        run.target.ensure_alive()
        run.examples += 1
        self.target = run.target
        self.profile = run.target.profile
        self.window = run.target.silence
        self.ue = make_ue(self.profile, 0, run.target.reply_timeout)
        self.layout = self.ue.layout
        self.codec = self.ue.codec
        subscribers = len(self.profile.pixit.subscribers)
        self.fuzz_subscriber = 1 if subscribers > 1 else 0
        self.fuzz_ue: Ue | None = None
        self.steps: list[dict[str, Any]] = []
        self.open = False  # a session the model knows of
        self.echoes = False  # its UP data is echoed (UE-to-HSE mode, a UP service)
        self.trusted = False  # the model knows the session's state (else a valid message may find it ended)
        self.forged_since_check = 0  # forged or malformed messages since the session was last seen unchanged
        self.pending: Any = None  # the HSE's Manage Keys Request, unanswered
        self.last_expected: str | None = None  # what the last `expect` step took (answer_manage_keys reads it)
        self.accepted_cp = -1  # the counters of the last valid messages the HSE accepted
        self.accepted_up = -1

    # ---- bookkeeping ---------------------------------------------------------------------------------------

    def step(self, verb: str, value: Any = None, **args: Any) -> None:
        entry: dict[str, Any] = {verb: value if value is not None else {}}
        entry.update({k: v for k, v in args.items() if v is not None})
        self.steps.append(entry)

    def fail(self, oracle: str, summary: str) -> None:
        run = self.run
        if not run.failed:
            run.first_found = (run.examples, round(time.monotonic() - run.started, 3))
        run.failed = True
        raise OracleFailed(oracle, summary, self.steps)

    def command_of(self, packet: Any) -> str:
        if packet is None:
            return "silence"
        if getattr(packet, "plane", None) == "up":
            return "user_data"
        return self.layout.command_names().get(getattr(packet, "cmd", -1), "not EMSDP")

    def receive(self, ue: Ue, timeout: float, wanted: str | None = None) -> Any:
        """The next datagram within `timeout`; when `wanted`, the first of that kind (a late Message Reject of
        something earlier is passed over), else None."""
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            try:
                packet = ue.receive(left)
            except NotJudgeable:
                continue
            if packet is None:
                return None
            if wanted is None or self.command_of(packet) == wanted:
                return packet
        return None

    def expect_answer(self, ue: Ue, wanted: str) -> Any:
        """The answer to a valid message: within the reply timeout, or, before its absence is held against the
        SUT, within the profile's full reply timeout more (a loaded host is slow, not wrong)."""
        answer = self.receive(ue, ue.timeout, wanted)
        if answer is None:
            answer = self.receive(ue, self.profile.pixit.reply_timeout, wanted)
        return answer

    def session_gone(self) -> None:
        self.open = self.trusted = False
        self.pending = None
        self.forged_since_check = 0

    def not_served(self, what: str, answer: Any) -> None:
        """A valid message was not served as the model expects: a finding if the only thing that happened since
        the session was last seen unchanged is forged or malformed messages; else the model lost track."""
        self.still_serves()
        if self.trusted and self.forged_since_check:
            self.step("expect", what)
            self.fail(
                "no_action_on_forged",
                f"after a forged or malformed message the session changed: a valid {what} got "
                f"{self.command_of(answer)}",
            )
        self.session_gone()

    def seen_unchanged(self) -> None:
        if self.trusted:
            self.forged_since_check = 0

    # ---- the session ---------------------------------------------------------------------------------------

    @precondition(lambda self: not self.open)
    @rule()
    def start(self) -> None:
        ue = self.ue
        ue.session = None
        self.step("start_session")
        try:
            ue.session_request()
            start = self.expect_answer(ue, "session_start")
            if start is None:
                raise ProtocolError("no Session Start")
            check = ue.accept_session_start(start)
            if check.outcome is not AutnOutcome.OK:
                raise ProtocolError(f"AUTN refused: {check.outcome.value}")
            ue.confirm()
        except PortUnreachable:
            self.dead_at_start("the HSE's UDP port is unreachable (ICMP port unreachable)")
        except (ProtocolError, ValueError) as exc:
            self.dead_at_start(f"a valid session could not be set up: {exc}")
        session = ue.session
        self.open = self.trusted = True
        self.forged_since_check = 0
        self.pending = None
        self.last_expected = "session_start"
        self.accepted_cp, self.accepted_up = session.cp_counter, -1
        self.echoes = (
            session.config.get("mode") == "ue_to_hse" and session.config.get("service") != "key_agreement_only"
        )

    def dead_at_start(self, why: str) -> None:
        """A valid session cannot be set up: the SUT no longer serves (as a case: a proof of life that fails)."""
        self.target.dead = True
        self.steps[-1] = {"probe": "session"}
        self.fail("still_serves", why)

    @precondition(lambda self: self.open and self.echoes)
    @rule()
    def user_data(self) -> None:
        ue = self.ue
        data = b"fuzz"
        sent_at = time.monotonic()
        ue.send(ue.user_data(data))
        self.step("send", "user_data")
        echo = self.expect_answer(ue, "user_data")
        if echo is None:
            self.not_served("user_data", echo)
            return
        self.step("expect", "user_data")
        self.last_expected = "user_data"
        self.accepted_up = ue.session.up_counter
        self.seen_unchanged()
        if self.pending is None:  # the HSE may start Manage Keys itself after so many UP messages
            # sent when the echo is: wait as long as the echo took, so a slow host does not push it past the window
            follow = self.receive(ue, max(self.window, time.monotonic() - sent_at))
            if self.command_of(follow) == "manage_keys_request":
                self.step("expect", "manage_keys_request")
                self.pending, self.last_expected = follow, "manage_keys_request"

    @precondition(lambda self: self.open and self.pending is None)
    @rule()
    def manage_keys(self) -> None:
        ue = self.ue
        ue.send(ue.protected("manage_keys_request", []))
        self.step("send", "manage_keys_request")
        request = self.receive(ue, ue.timeout, "manage_keys_request")
        if request is None:  # the SUT may not take Manage Keys from the UE (PICS): nothing learnt
            self.trusted = self.trusted and not self.forged_since_check
            return
        self.step("expect", "manage_keys_request")
        self.last_expected = "manage_keys_request"
        self.accepted_cp = ue.session.cp_counter
        self.pending = request
        self.seen_unchanged()

    @precondition(lambda self: self.open and self.pending is not None and self.last_expected == "manage_keys_request")
    @rule()
    def answer_manage_keys(self) -> None:
        ue = self.ue
        request, self.pending = self.pending, None
        try:
            check, _ = ue.answer_manage_keys(request)
        except ProtocolError:
            self.session_gone()
            return
        self.step("answer_manage_keys")
        self.accepted_cp = ue.session.cp_counter
        if check.outcome is AutnOutcome.SYNCH_FAILURE:  # the HSE challenges again: the model lets it go
            self.trusted = False
        self.last_expected = None

    @precondition(lambda self: self.open)
    @rule()
    def terminate(self) -> None:
        ue = self.ue
        ue.send(ue.protected("session_terminate_request", []))
        self.step("send", "session_terminate_request")
        answer = self.expect_answer(ue, "session_terminate_response")
        if answer is None:
            self.not_served("session_terminate_response", answer)
            return
        self.step("expect", "session_terminate_response")
        self.session_gone()

    @precondition(lambda self: self.open)
    @rule(command=st.sampled_from((*UE_COMMANDS, "unknown_command", "session_start", "message_reject")))
    def any_command(self, command: str) -> None:
        """Every command in every state, valid MAC: nothing is required but that the SUT goes on serving."""
        ue = self.ue
        if command not in self.layout.commands and command != "unknown_command":
            return
        code: Any = command
        if command == "unknown_command":
            code = next(c for c in range(0x7F, 0, -1) if c not in self.layout.command_names())
        tlvs = [("res", ue.session.res)] if command in ("session_start_confirmation", "manage_keys_response") else []
        ue.send(ue.protected(code, tlvs))
        self.step("send", command)
        answer = self.receive(ue, self.window)
        # what a valid message of this command does here is the SUT's choice: the model forgets the session's state
        self.trusted = False
        if command == "session_terminate_request" and self.command_of(answer) == "session_terminate_response":
            self.session_gone()
        elif self.command_of(answer) == "manage_keys_request":
            self.pending, self.last_expected = answer, None

    # ---- forged and malformed: must not be acted on ----------------------------------------------------------

    def must_not_act(self, what: str, command: str) -> None:
        """Only the binding's Message Reject or silence may follow a forged or malformed `command`. An answer is
        charged to it only when nothing else explains it: the model knows the session's state (else a valid
        message before may be what the HSE answers), and it is not a Manage Keys Request of the HSE's own
        (which it may start at any time, e.g. after so many user-plane messages) after anything but a forged
        Manage Keys Request."""
        ue = self.ue
        self.step("expect", "silence_or_reject", within=f"{round(self.window * 1000)}ms")
        answer = self.receive(ue, self.window)
        got = self.command_of(answer)
        if answer is not None and got != "message_reject":
            if got == "manage_keys_request" and (command != "manage_keys_request" or not self.trusted):
                self.steps[-1] = {"expect": "manage_keys_request"}  # the HSE's own: the step as it went
                self.pending, self.last_expected = answer, "manage_keys_request"
                self.trusted = False
                return
            if not self.trusted:  # what the session's state makes of it is unknown to the model: not judged
                self.steps.pop()
                if got == "session_terminate_response":
                    self.session_gone()
                return
            self.fail("no_action_on_forged", f"{what} was acted on: the HSE answered {got}")
        self.forged_since_check += 1

    @precondition(lambda self: self.open)
    @rule(command=st.sampled_from((*UE_COMMANDS, "user_data")), how=st.sampled_from(FORGERIES), n=st.integers(0, 7))
    def forged(self, command: str, how: str, n: int) -> None:
        """A command under a corrupt MAC, a stale (0) or future Key ID, or a stale counter: as the engine's
        `send` builds it (`mac: corrupt`, `key_id: N`, `counter: N`)."""
        self.forge(command, how, n)

    @precondition(lambda self: self.open)
    @rule(index=st.integers(0, 2), how=st.sampled_from(FORGERIES), n=st.integers(0, 7))
    def forged_in_state(self, index: int, how: str, n: int) -> None:
        """A forgery of what the session's state would accept (so what a missed check would act on): with Manage
        Keys pending its response, else a UE-initiated Manage Keys Request; a Terminate Request; user data."""
        expected = "manage_keys_response" if self.pending is not None else "manage_keys_request"
        command = (expected, "session_terminate_request", "user_data")[index]
        self.forge(command, how, n)

    def forge(self, command: str, how: str, n: int) -> None:
        ue = self.ue
        session = ue.session
        options: dict[str, Any] = {}
        if how == "mac":
            options["mac"] = "corrupt"
        elif how == "key_id_stale":
            options["key_id"] = 0
        elif how == "key_id_future":
            limit = (1 << self.layout.field_bits["key_id"]) - 1
            options["key_id"] = min(limit, session.key_id + 1 + n % max(1, limit - session.key_id))
            if options["key_id"] == session.key_id:
                return
        else:
            stale = self.accepted_up if command == "user_data" else self.accepted_cp
            if stale < 0 or not self.trusted:
                return
            options["counter"] = min(stale, n)
        counter = options.get("counter")
        if command == "user_data":
            message = ue.user_data(b"fuzz", counter=counter)
        else:
            tlvs = [("res", session.res)] if command in ("session_start_confirmation", "manage_keys_response") else []
            message = ue.protected(command, tlvs, counter=counter)
        if options.get("mac") == "corrupt":
            message = message.with_mac(bytes([message.mac[0] ^ 0x01]) + message.mac[1:])
        if "key_id" in options:
            message = self.codec.decode(self.codec.fast.replace(message, key_id=options["key_id"]), message.scheme)
            message = ue.security.seal(message, session.keys, "uplink")
        raw = bytes(message)
        ue.send(raw)
        self.step("send", command, **({"with": options}))
        self.must_not_act(f"a {command} with {FORGERY_WORDS[how]}", command)

    @precondition(lambda self: self.open)
    @rule(
        command=st.sampled_from((*UE_COMMANDS, "user_data")),
        mutation=st.sampled_from(MUTATIONS),
        index=st.integers(0, 7),
        position=st.integers(0, 4095),
    )
    def malformed(self, command: str, mutation: str, index: int, position: int) -> None:
        """A protected message whose octets are then mutated, the MAC left as it was: forged by construction."""
        ue = self.ue
        session = ue.session
        if command == "user_data":
            message = ue.user_data(b"fuzz")
        else:
            tlvs = [("res", session.res)] if command in ("session_start_confirmation", "manage_keys_response") else []
            message = ue.protected(command, tlvs)
        raw = mutate(self.codec, message, mutation, index, position, protected=True)
        if raw == bytes(message):
            return
        ue.send(raw)
        self.step("send", "raw", **{"with": {"hex": raw.hex()}})
        self.must_not_act(f"a {command} mutated ({mutation})", command)

    # ---- mutated Session Requests (another UE, another subscriber where the PIXIT has one) --------------------

    @rule(mutation=st.sampled_from(MUTATIONS), index=st.integers(0, 7), position=st.integers(0, 4095))
    def mutated_request(self, mutation: str, index: int, position: int) -> None:
        if self.fuzz_ue is None:
            self.fuzz_ue = make_ue(self.profile, self.fuzz_subscriber, self.target.reply_timeout)
        ue = self.fuzz_ue
        request = ue.build_session_request()
        raw = mutate(self.codec, request, mutation, index, position, protected=False)
        ue.send(raw)
        self.step("send", "raw", **{"as": "fuzz", "with": {"hex": raw.hex()}})
        answer = self.receive(ue, self.window)
        if answer is None:  # dropped, or the SUT died of it: a crash is silent
            self.still_serves()
        if self.fuzz_subscriber == 0 and self.command_of(answer) == "session_start":
            self.session_gone()  # the subscriber's new session supersedes the UE's

    # ---- after every example: the SUT still serves -------------------------------------------------------

    def teardown(self) -> None:
        try:
            if self.run.failed and self.target.dead:
                return  # the example already failed on a dead SUT
            self.still_serves()
        finally:
            self.ue.close()
            if self.fuzz_ue is not None:
                self.fuzz_ue.close()

    def still_serves(self) -> None:
        """Proof of life: a fresh UE (its own socket) completes a session; else the oracle still_serves fails."""
        probe = make_ue(self.profile, 0, max(self.target.reply_timeout, self.profile.pixit.reply_timeout))
        try:
            try:
                probe.start()
            except ProtocolError:  # a slow answer on a loaded host is not death: one more session decides
                probe.session = None
                probe.start()
        except PortUnreachable:
            self.target.dead = True
            self.step("probe", "session")
            self.fail("still_serves", "after the sequence the HSE's UDP port is unreachable")
        except (ProtocolError, ValueError) as exc:
            self.target.dead = True
            self.step("probe", "session")
            self.fail("still_serves", f"after the sequence a fresh UE cannot set up a session: {exc}")
        finally:
            probe.close()


# ---- structure-aware mutations, with the binding's codec --------------------------------------------------


def mutate(codec: Any, message: Any, mutation: str, index: int, position: int, *, protected: bool) -> bytes:
    """The octets of a CP or UP message with one mutation. TLV mutations rebuild the message with the codec (the
    header and MAC kept); `index` picks the TLV, `position` the octet or bit. Without TLVs (UP data, an empty
    command), a TLV mutation adds one TLV of the binding first."""
    raw = bytes(message)
    layout = codec.layout
    if mutation in OCTET_MUTATIONS:
        start = layout.header_bytes(message.plane, message.scheme) if protected else 0
        if mutation == "bit_flip":
            bit = position % ((len(raw) - start) * 8)
            at = start + bit // 8
            return raw[:at] + bytes([raw[at] ^ (0x80 >> bit % 8)]) + raw[at + 1 :]
        if mutation == "truncate":
            return raw[: position % len(raw)]
        return raw + bytes([position % 256]) * (1 + position % 1400)  # oversize: up to ~1.4 kB more
    if message.plane != "cp":
        return raw[:-1] + bytes([raw[-1] ^ 0x01])  # UP data has no TLVs: a flipped octet instead
    tlvs = [(t.tag, t.value) for t in message.tlvs]
    if not tlvs:
        tlvs = [(next(iter(layout.tags.values())), b"\x00")]
    i = index % len(tlvs)
    tag, value = tlvs[i]
    max_length = (1 << 8 * layout.length_bytes) - 1
    items: list[tuple[int, bytes, int]] = [(t, v, len(v)) for t, v in tlvs]
    if mutation == "length_zero":
        items[i] = (tag, b"", 0)
    elif mutation == "length_plus_one":
        items[i] = (tag, value, len(value) + 1)
    elif mutation == "length_minus_one":
        items[i] = (tag, value, max(0, len(value) - 1))
    elif mutation == "length_max":
        items[i] = (tag, value, max_length)
    elif mutation == "value_longer":
        items[i] = (tag, value + b"\x00", len(value) + 1)
    elif mutation == "value_shorter":
        items[i] = (tag, value[:-1], max(0, len(value) - 1))
    elif mutation == "missing":
        del items[i]
    elif mutation == "repeated":
        items.insert(i, items[i])
    else:  # unknown_tag
        unknown = next(
            t for t in range(max(layout.tags.values()) + 1, 1 << 8 * layout.tag_bytes) if t not in layout.tag_names()
        )
        items.insert(i, (unknown, bytes([position % 256]) * (index % 4), index % 4))
    body = b"".join(codec.fast.tlv(t, v, n) for t, v, n in items)
    mac = message.mac or b""
    head = layout.header_bytes("cp", message.scheme) + 1  # the header and the command octet
    return raw[:head] + body + raw[len(raw) - len(mac) :] if mac else raw[:head] + body


# ---- one fuzz run --------------------------------------------------------------------------------------------


def machine_for(run: Run) -> type[EmsdpMachine]:
    return type("EmsdpFuzz", (EmsdpMachine,), {"run": run})


def fuzz_emsdp(
    target: Target,
    *,
    examples: int = DEFAULT_EXAMPLES,
    seconds: float | None = None,
    seed: int = 0,
    database: Path | None = None,
    steps: int = STEPS_PER_EXAMPLE,
    replay: Callable[[Finding], str | None] | None = None,
    shrink_seconds: float = SHRINK_SECONDS,
) -> FuzzReport:
    """Fuzz the HSE `target` for `examples` examples (or until `seconds` pass, whichever first); each failure is
    shrunk by Hypothesis and returned as a Finding (its steps a replayable case). `replay(finding)` replays the
    shrunk steps once more (under a PcapTap) and returns the pcap's path: the evidence."""
    run = Run(target, seed, deadline=None if seconds is None else time.monotonic() + seconds)
    machine = machine_for(run)
    config = settings(
        max_examples=examples if seconds is None else TIME_CHUNK,
        stateful_step_count=steps,
        database=DirectoryBasedExampleDatabase(str(database)) if database is not None else None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=True,
        print_blob=False,
    )
    started = time.monotonic()
    failures: list[OracleFailed] = []
    unconfirmed: list[str] = []
    try:
        with _shrinking_limited(shrink_seconds), with_reporter(lambda _: None):  # findings say it all
            # a time budget: chunks of TIME_CHUNK examples, seeds seed, seed+1, ... until the time is spent
            chunk = 0
            while True:
                factory = hypothesis_seed(seed + chunk)(lambda: machine())
                try:
                    run_state_machine_as_test(factory, settings=config)
                except FlakyStrategyDefinition:  # the SUT took a replayed sequence elsewhere: not a finding
                    unconfirmed.append(DIVERGED.format(examples=run.examples))
                chunk += 1
                if run.deadline is None or time.monotonic() >= run.deadline:
                    break
    except BaseException as exc:
        seen = _oracle_failures(exc)
        if not seen:
            raise
        failures = [failure for failure, flaky in seen if not flaky]
        unconfirmed += [f"{f.oracle}: {f.summary}" for f in _distinct([f for f, flaky in seen if flaky])]
    elapsed = time.monotonic() - started
    findings = []
    for failure in _distinct(failures):
        finding = Finding(INTERFACE, failure.oracle, failure.summary, _replayable(failure.steps), None, seed)
        if replay is not None:
            target.ensure_alive()
            finding = dataclasses.replace(finding, pcap=replay(finding))
            target.dead = True if failure.oracle == "still_serves" else target.dead
        findings.append(finding)
    found = {"examples": run.first_found[0], "seconds": run.first_found[1]} if run.first_found else None
    return FuzzReport(
        INTERFACE, run.examples, round(elapsed, 3), seed, findings, found_after=found, unconfirmed=unconfirmed
    )


@contextlib.contextmanager
def _shrinking_limited(seconds: float) -> Iterator[None]:
    """Hypothesis shrinks a failure for up to 300 s; against a SUT every shrink step is a conversation, so the
    run caps it (the engine's module constant: no public setting says it). The shrunk failure is kept."""
    from hypothesis.internal.conjecture import engine

    before = getattr(engine, "MAX_SHRINKING_SECONDS", None)
    if before is None:
        yield
        return
    engine.MAX_SHRINKING_SECONDS = seconds  # type: ignore[assignment]
    try:
        yield
    finally:
        engine.MAX_SHRINKING_SECONDS = before


def _oracle_failures(exc: BaseException, flaky: bool = False) -> list[tuple[OracleFailed, bool]]:
    """The oracle failures in what Hypothesis raised, each with whether it failed to reproduce (Flaky): one that
    did not fail again when Hypothesis replayed its example is not a finding (a late datagram on a loaded host
    looks like an answer once), only reported as unconfirmed."""
    if isinstance(exc, OracleFailed):
        return [(exc, flaky)]
    flaky = flaky or isinstance(exc, Flaky)
    if isinstance(exc, BaseExceptionGroup):
        return [f for e in exc.exceptions for f in _oracle_failures(e, flaky)]
    if flaky and exc.__cause__ is not None:
        return _oracle_failures(exc.__cause__, flaky)
    return []


def _distinct(failures: list[OracleFailed]) -> list[OracleFailed]:
    seen, kept = set(), []
    for failure in failures:
        key = (failure.oracle, failure.summary)
        if key not in seen:
            seen.add(key)
            kept.append(failure)
    return kept


def _replayable(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The steps as a case runs them: ending in a proof of life (the engine wants one after an absence)."""
    steps = [dict(s) for s in steps]
    if not steps or "probe" not in steps[-1]:
        steps.append({"probe": "session"})
    return steps
