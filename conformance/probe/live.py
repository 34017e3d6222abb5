"""The live probe: short sessions against the SUT, each message chosen to tell candidates apart, all captured.

A SUT accepts only what is made under its own reading and answers only that, so the probe makes the SUT answer:

1. a Session Request under the harness's layout (and, while the SUT stays silent, under each layout candidate
   whose request differs: one session each). Its Session Start is read offline (offline.py: layout, and the AKA
   run under the PIXIT subscriber's K/OPc, which gives CK and IK);
2. in that session, user data (the UP integrity service) under each protection candidate in turn, closest to the
   harness's reading first, each with a fresh counter, until the SUT echoes: the echo must verify under that
   candidate. The MAC/COUNT construction is then known;
3. a protected control-plane message that the SUT answers (a Manage Keys Request of the UE, or else a Terminate
   Request) under each candidate of what is left of the CP integrity key's derivation, until the answer verifies;
4. when the SUT claims the confidential service, one more session asking for it: ciphered user data under each
   candidate of the UP ciphering key until the echo deciphers to what was sent.

Traffic goes only to the profile's HSE endpoint, through the UE role's socket, whose tap writes the probe folder's
pcap. The statuses are not taken from the loop above: the offline probe reads that pcap, so the live probe's
evidence is exactly what a lab can re-check with `probe --pcap`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.binding import BindingError, load_binding
from conformance.capture.tap import PcapTap
from conformance.crypto.protect import DOWNLINK, UPLINK
from conformance.emsdp.codec import Codec
from conformance.emsdp.secure import MessageSecurity
from conformance.probe.candidates import LAYOUT, PROTECTION, assignments, candidates_of, groups_of
from conformance.probe.capture import Seen
from conformance.probe.offline import AkaRun, ProbeResult, Search, View, probe_captures
from conformance.roles.errors import PortUnreachable
from conformance.roles.timing import Timing
from conformance.roles.ue import Credentials, Ue

DEFAULT_MAX_SESSIONS = 50
SESSION_KEY_ID = 1  # the key set a Session Start establishes, as the UE role uses it
PROBE_DATA = b"best-conformance probe"


class ProbeAborted(RuntimeError):
    """The live probe cannot go on (the SUT is not there, or never answers a Session Request)."""


@dataclass
class Open:
    """A session the SUT set up: the UE (its socket), the capture read under the layout found, its AKA run."""

    ue: Ue
    view: View
    run: AkaRun
    session_id: int
    scheme: int
    layout: dict[str, Any]
    counters: dict[str, int]  # the session's uplink counters (cp, up), shared by its readings under tied layouts


@dataclass
class LiveProbe:
    profile: Any
    folder: Path
    max_sessions: int = DEFAULT_MAX_SESSIONS
    subscriber: int = 0
    say: Callable[[str], None] = lambda text: None
    sessions: int = 0
    attempts: list[dict[str, Any]] = field(default_factory=list)
    known: dict[str, Any] = field(default_factory=dict)  # what the loop found so far (the next steps build on it)

    def __post_init__(self) -> None:
        self.hse = self.profile.hse_endpoint
        self.base = dict(self.profile.profile.binding)
        self.candidates = candidates_of(self.profile.binding)
        self.pcap = self.folder / "live.pcap"
        self.search = Search([], self.base, self.profile.pixit, self.candidates)  # its key derivations, cached

    def run(self) -> ProbeResult:
        started = time.monotonic()
        self.folder.mkdir(parents=True, exist_ok=True)
        with PcapTap(self.pcap) as tap:
            self.tap = tap
            readings = self._open(confidential=False)
            session = readings[0] if readings else None
            if readings:
                with readings[0].ue:
                    session = self._user_plane(readings, "integrity") or session
                    self._control_plane(session)
            pics = self.profile.pics
            ciphering = [c for c in self.candidates.values() if c.stage == PROTECTION and c.key.startswith("keys.")]
            if "up_confidential" in pics.services and ciphering and self.sessions < self.max_sessions:
                confidential = self._open(confidential=True, layout=session.layout if session else None)
                if confidential:
                    with confidential[0].ue:
                        self._user_plane(confidential, "ciphering")
        result = probe_captures([self.pcap], self.profile)
        result.live = {
            "sessions": self.sessions,
            "max_sessions": self.max_sessions,
            "seconds": round(time.monotonic() - started, 3),
            "pcap": str(self.pcap),
            "attempts": self.attempts,
        }
        return result

    # ---- sessions ---------------------------------------------------------------------------------------------

    def _binding(self, *layers: Mapping[str, Any]) -> Any:
        try:
            return load_binding(self.base, *layers)
        except BindingError:
            return None

    def _requests(self) -> list[dict[str, Any]]:
        """Layout assignments whose Session Request differs, the harness's first: the SUT's silence to one of
        them says something only if the octets differ."""
        found: dict[bytes, dict[str, Any]] = {}
        for group in groups_of(self.candidates, LAYOUT).values():
            for option in assignments(group):
                binding = self._binding(option)
                if binding is None:
                    continue
                octets = bytes(self._ue(binding, None).build_session_request())
                found.setdefault(octets, option)
        return list(found.values()) or [{}]

    def _ue(self, binding: Any, tap: PcapTap | None) -> Ue:
        pixit = self.profile.pixit
        return Ue(
            binding,
            Credentials.from_subscriber(pixit.subscribers[self.subscriber]),
            self.hse,
            snn=pixit.serving_network_name,
            eas_id=pixit.eas_id,
            sn_id=pixit.serving_network_id,
            tap=tap,
            timing=Timing(self.hse, pixit.reply_timeout, pixit.silence_window, pixit.timing == "measured"),
        )

    def _open(self, *, confidential: bool, layout: dict[str, Any] | None = None) -> list[Open]:
        """A session the SUT sets up, one Session Request per layout candidate until it answers: the session as
        read under each layout its Session Start leaves tied (the first the closest to the harness's)."""
        for option in [layout] if layout is not None else self._requests():
            if self.sessions >= self.max_sessions:
                return []
            binding = self._binding(option)
            ue = self._ue(binding, self.tap)
            self.sessions += 1
            try:
                ue.session_request(confidentiality=confidential)
                reply = ue.receive(ue.timeout)
            except PortUnreachable as exc:
                ue.close()
                raise ProbeAborted(f"the SUT at {self.hse[0]}:{self.hse[1]} does not listen: {exc}") from None
            what = (
                f"Session Request{' (confidentiality)' if confidential else ''} under {option or 'the harness layout'}"
            )
            self.attempts.append({"session": self.sessions, "sent": what, "answered": reply is not None})
            if reply is None:
                self.say(f"session {self.sessions}: {what}: silence")
                ue.close()
                continue
            readings = self._read_start(ue, [layout] if layout is not None else None)
            if readings:
                layouts = [r.layout or "as the harness" for r in readings]
                self.say(f"session {self.sessions}: {what}: Session Start, layouts {layouts}")
                return readings
            self.say(f"session {self.sessions}: {what}: answered, but no Session Start that verifies")
            ue.close()
        return []

    def _seen(self) -> list[Seen]:
        port = self.hse[1]
        path = str(self.pcap)
        return [
            Seen(path, "", frame, when, src, dst, payload, src[1] == port, (path, dst if src[1] == port else src))
            for frame, when, src, dst, payload in self.tap.datagrams(port)
        ]

    def _read_start(self, ue: Ue, layouts: list[dict[str, Any]] | None = None) -> list[Open]:
        """The latest Session Start read offline from the capture so far, under each layout still tied (or
        under the layouts given), with its AKA run."""
        search = Search(self._seen(), self.base, self.profile.pixit, self.candidates)
        if layouts is None:
            layouts = search.layout()[0]
        counters = {"cp": 0, "up": 0}
        readings = []
        for layout in layouts:
            view = search.view(layout)
            if view is None or not view.sessions:
                continue
            (_flow, session_id), run = max(view.sessions.items(), key=lambda item: item[1].seen.frame)
            scheme = run.config.get("counter_scheme", view.codec.layout.default_scheme)
            readings.append(Open(ue, view, run, session_id, scheme, layout, counters))
        return sorted(readings, key=lambda r: self._departures(r.layout))

    def _departures(self, assignment: Mapping[str, Any]) -> int:
        """How many values of an assignment differ from the harness's reading."""
        return sum(1 for k, v in assignment.items() if k in self.candidates and v != self.candidates[k].base)

    # ---- protection -------------------------------------------------------------------------------------------

    def _keys(self, session: Open, assignment: Mapping[str, Any]) -> tuple[Any, dict[str, bytes]] | None:
        binding = self._binding(session.layout, {**self.known, **assignment})
        if binding is None:
            return None
        keys = self.search.keys_under(session.view, session.run, {**self.known, **assignment})
        if keys is None:
            return None
        return MessageSecurity(Codec(binding), binding), keys

    def _open_candidates(self, session: Open, plane: str, use: str) -> list[Any]:
        searched = [c for c in self.candidates.values() if c.stage == PROTECTION and c.key not in self.known]
        agreement = session.run.config.get("key_agreement")
        search = self.search
        relevant = search.relevant(session.view, searched, plane, use, agreement)
        if use == "ciphering" or session.run.config.get("service") == "up_confidential":
            extra = search.relevant(session.view, searched, plane, "ciphering", agreement)
            relevant += [c for c in extra if c not in relevant]
        return relevant

    def _user_plane(self, readings: list[Open], use: str) -> Open | None:
        """User data under each candidate (and each layout still tied) until the SUT's echo verifies (and
        deciphers to what was sent); the reading it verified under."""
        tries = [(r, a) for r in readings for a in assignments(self._open_candidates(r, "up", use))]
        tries.sort(key=lambda t: self._departures(t[0].layout) + self._departures(t[1]))
        for session, assignment in tries:
            if not assignment:
                continue
            made = self._keys(session, assignment)
            if made is None:
                continue
            security, keys = made
            cipher = session.run.config.get("service") == "up_confidential"
            session.counters["up"] += 1
            message = security.protected_up(
                PROBE_DATA,
                keys,
                session_id=session.session_id,
                counter=session.counters["up"] % (1 << security.layout.counter_bits["up"][session.scheme]),
                scheme=session.scheme,
                key_id=SESSION_KEY_ID,
                direction=UPLINK,
                cipher=cipher,
            )
            session.ue.send(message)

            def echoes(
                raw: bytes, security: MessageSecurity = security, keys: dict[str, bytes] = keys, s: Open = session
            ) -> bool:
                packet = security.codec.decode(raw, s.scheme)
                if packet.plane != "up" or not security.verify(packet, keys, DOWNLINK):
                    return False
                data = packet.data
                if s.run.config.get("service") == "up_confidential":
                    data = security.crypt(data, keys, "up", packet.session_id, packet.counter, s.scheme, DOWNLINK)
                return data == PROBE_DATA

            tried = {**session.layout, **assignment} if len(readings) > 1 else assignment
            if self._answered(session, f"user data under {tried}", echoes):
                self.known.update(assignment)
                return session
        return None

    def _control_plane(self, session: Open) -> None:
        """A protected CP message the SUT answers, under each candidate left, until its answer verifies."""
        relevant = self._open_candidates(session, "cp", "integrity")
        if not relevant:
            return
        pics = self.profile.pics
        command = "manage_keys_request" if pics.manage_keys_from_ue else "session_terminate_request"
        if not (pics.manage_keys_from_ue or pics.terminate_from_ue):
            return
        for assignment in assignments(relevant):
            made = self._keys(session, assignment)
            if made is None:
                continue
            security, keys = made
            session.counters["cp"] += 1
            message = security.protected_cp(
                command,
                [],
                keys,
                session_id=session.session_id,
                counter=session.counters["cp"] % (1 << security.layout.counter_bits["cp"][session.scheme]),
                scheme=session.scheme,
                key_id=SESSION_KEY_ID,
                direction=UPLINK,
            )
            session.ue.send(message)

            def verifies(raw: bytes, security: MessageSecurity = security, keys: dict[str, bytes] = keys) -> bool:
                packet = security.codec.decode(raw, session.scheme)
                return packet.plane == "cp" and packet.mac is not None and security.verify(packet, keys, DOWNLINK)

            if self._answered(session, f"{command} under {assignment}", verifies):
                self.known.update(assignment)
                return

    def _answered(self, session: Open, what: str, accepts: Callable[[bytes], bool]) -> bool:
        """Whether, within the silence window, the SUT sends a datagram `accepts` takes (others are read and left
        in the capture: they are evidence too)."""
        window = session.ue.timing.silence(None)
        end = time.monotonic() + window
        while (left := end - time.monotonic()) > 0:
            packet = session.ue.receive(left)
            if packet is None:
                break
            if accepts(bytes(packet)):
                self.attempts.append({"session": self.sessions, "sent": what, "answered": True})
                self.say(f"session {self.sessions}: {what}: answered, verifies")
                return True
        self.attempts.append({"session": self.sessions, "sent": what, "answered": False})
        self.say(f"session {self.sessions}: {what}: no answer that verifies")
        return False


def probe_live(
    profile: Any, folder: Path, *, max_sessions: int = DEFAULT_MAX_SESSIONS, say: Callable[[str], None] | None = None
) -> ProbeResult:
    """Probe the SUT a profile describes by talking to it; the capture is `folder`/live.pcap."""
    probe = LiveProbe(profile, folder, max_sessions, say=say or (lambda text: None))
    return probe.run()
