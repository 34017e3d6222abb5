"""The offline probe: from a capture and the subscribers' credentials, the binding assignments the SUT's messages
fit, searched one group of parameters at a time (never the product of all of them).

1. Layout (header field order, TLV tags): each group's assignments are tried with the other groups held; an
   assignment scores the SUT's datagrams that read cleanly under it: a known command, TLVs consumed exactly and of
   their sizes, the command's mandatory TLVs present, a Session Start without keys on a new session, an HSE
   configuration that decodes, RAND/AUTN whose MAC-A verifies under a PIXIT subscriber's K/OPc (MILENAGE: this
   is the AKA step, and it gives CK and IK), and a protected message on a session the capture set up. Two rounds,
   so that a group judged before the next one moved is judged again.
2. Protection: for every protected message that decides (the SUT's, and its peer's that the SUT answered), the
   assignments of the parameters it depends on (the derivation chain of its plane's integrity key, the MAC and
   COUNT construction) under which its MAC verifies with the session's keys; messages that depend on the same
   parameters are intersected, then the groups joined. A confidential session's echoed user data adds the
   ciphering key: the uplink and its echo must decipher to the same octets.

Each searched parameter ends with a status: default (only the harness's reading fits), inferred (only another
value fits), ambiguous (several fit), contradicted (a message fits no candidate: it is named) or undecided (no
message of the capture depends on it), with the message that decided it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.binding import Binding, BindingError, load_binding
from conformance.crypto.keys import KeyHierarchy
from conformance.crypto.milenage import Milenage
from conformance.crypto.protect import DOWNLINK, UPLINK
from conformance.emsdp.codec import Codec
from conformance.emsdp.fast import Message
from conformance.emsdp.secure import MessageSecurity
from conformance.emsdp.trace import decode_trace
from conformance.emsdp.ue_side import NoSessionKeys, serving_network_id, session_keys
from conformance.emsdp.values import decode_hse_config, tlv_values
from conformance.probe.candidates import LAYOUT, PROTECTION, Candidate, assignments, candidates_of, groups_of
from conformance.probe.capture import Seen, file_sha256, read_captures

DEFAULT, INFERRED, AMBIGUOUS, CONTRADICTED, UNDECIDED = "default", "inferred", "ambiguous", "contradicted", "undecided"
MAX_LAYOUTS = 16  # layout assignments still tied after the layout stage, each judged by its MACs


@dataclass
class Finding:
    """What the probe concluded about one searched parameter."""

    key: str
    status: str
    base: Any  # the harness's reading
    values: list[Any]  # the candidate values the SUT's messages fit
    candidates: list[Any]
    evidence: dict[str, Any] | None = None
    reason: str = ""

    @property
    def value(self) -> Any:
        """The SUT's value, when the probe found exactly one."""
        return self.values[0] if len(self.values) == 1 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "status": self.status,
            "harness_value": self.base,
            "fitting_values": self.values,
            "candidates": self.candidates,
            "decided_by": self.evidence,
            "reason": self.reason,
        }


@dataclass
class ProbeResult:
    findings: dict[str, Finding]
    contradictions: list[dict[str, Any]]
    pcaps: list[dict[str, str]]
    sut_messages: int
    deciding_messages: int
    bindings_tried: int
    notes: list[str] = field(default_factory=list)
    live: dict[str, Any] | None = None  # sessions used, attempts, time: set by the live probe

    @property
    def consistent(self) -> bool:
        return not self.contradictions and all(f.status != CONTRADICTED for f in self.findings.values())

    @property
    def differences(self) -> list[Finding]:
        return [f for f in self.findings.values() if f.status == INFERRED]

    def overrides(self) -> dict[str, dict[str, Any]]:
        """binding-override.yaml: every inferred value, with the evidence it was inferred from."""
        out = {}
        for finding in self.differences:
            evidence = finding.evidence or {}
            source = f"inferred by probe from {evidence.get('pcap_sha256', 'the capture')}"
            if evidence:
                source += f" (frame {evidence['frame']} of {Path(evidence['pcap']).name})"
            out[finding.key] = {"value": finding.value, "source": source}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "consistent": self.consistent,
            "differences": {f.key: f.value for f in self.differences},
            "parameters": [f.to_dict() for f in self.findings.values()],
            "contradictions": self.contradictions,
            "pcaps": self.pcaps,
            "sut_messages": self.sut_messages,
            "deciding_messages": self.deciding_messages,
            "bindings_tried": self.bindings_tried,
            "notes": self.notes,
            "live": self.live,
        }


# ---- the capture under one binding ------------------------------------------------------------------------


@dataclass
class AkaRun:
    """A Session Start whose AUTN verified under a subscriber: what its session's keys are made of."""

    seen: Seen
    subscriber: int
    rand: bytes
    autn: bytes
    config: dict[str, Any]
    ck: bytes
    ik: bytes
    eas_id: str
    snn: str
    sn_id: bytes | None


class Subscribers:
    """The PIXIT's subscribers as MILENAGE instances; which of them made a RAND/AUTN (cached: every layout that
    reads the same octets asks the same question)."""

    def __init__(self, pixit: Any):
        self.pixit = pixit
        self.milenages = [
            Milenage(s.k, s.opc) if s.opc is not None else Milenage.from_op(s.k, s.op) for s in pixit.subscribers
        ]
        self._cache: dict[tuple[bytes, bytes], tuple[int, bytes, bytes] | None] = {}

    def authenticate(self, rand: bytes, autn: bytes) -> tuple[int, bytes, bytes] | None:
        """(subscriber index, CK, IK) of the subscriber whose K/OPc makes AUTN's MAC-A, or None."""
        key = (rand, autn)
        if key not in self._cache:
            self._cache[key] = self._find(rand, autn)
        return self._cache[key]

    def _find(self, rand: bytes, autn: bytes) -> tuple[int, bytes, bytes] | None:
        if len(rand) != 16 or len(autn) != 16:
            return None
        for index, milenage in enumerate(self.milenages):
            _res, ck, ik, ak = milenage.f2345(rand)
            sqn = bytes(a ^ b for a, b in zip(autn[:6], ak, strict=True))
            if milenage.f1_f1star(rand, sqn, autn[6:8])[0] == autn[8:]:
                return index, ck, ik
        return None


class View:
    """The capture read under one binding: each datagram decoded (counter schemes tracked per flow as `dissect`
    does), whether each of the SUT's datagrams fits and why not, and the AKA runs of the sessions."""

    def __init__(self, seen: Sequence[Seen], binding: Binding, subscribers: Subscribers):
        self.binding = binding
        self.codec = Codec(binding)
        self.messages: list[Message] = []
        for pcap in dict.fromkeys(s.pcap for s in seen):
            items = [s for s in seen if s.pcap == pcap]
            tuples = [(s.frame, s.time, s.src, s.dst, s.payload) for s in items]
            self.messages += [t.packet for t in decode_trace(tuples, self.codec)]
        self.seen = list(seen)
        self.sessions: dict[tuple[Any, int], AkaRun] = {}
        self.fits: list[str | None] = []  # per datagram: None if it fits (or is not the SUT's), else why not
        # a flow with a Session Start (its command code: read alike under every layout) sets its sessions up in
        # the capture: there a protected message must name one, whether or not this binding reads the Start
        start = self.codec.layout.commands["session_start"]
        flows_with_start = {
            s.flow for s, m in zip(self.seen, self.messages, strict=True) if s.from_sut and m.command == start
        }
        requests: dict[Any, Message] = {}
        for s, m in zip(self.seen, self.messages, strict=True):
            if not s.from_sut:
                if m.plane == "cp" and m.command == self.codec.layout.commands["session_request"]:
                    requests[s.flow] = m
                self.fits.append(None)
                continue
            why = self._misfit(s, m, requests.get(s.flow), flows_with_start, subscribers)
            self.fits.append(why)

    @property
    def score(self) -> int:
        return sum(1 for s, why in zip(self.seen, self.fits, strict=True) if s.from_sut and why is None)

    def signature(self, index: int) -> tuple[Any, ...]:
        """What this binding makes of a datagram: two bindings with one signature read it alike."""
        m = self.messages[index]
        tlvs = tuple((t.name, t.value) for t in m.tlvs)
        return (self.fits[index], m.plane, tuple(sorted(m.header.items())), m.command, tlvs, m.mac)

    def _misfit(
        self, s: Seen, m: Message, request: Message | None, started: set[Any], subscribers: Subscribers
    ) -> str | None:
        if m.plane is None or m.problems:
            return "; ".join(m.problems) or "not EMSDP"
        if m.plane == "cp":
            name = m.command_name
            values = tlv_values(m)
            wanted = self.binding.get(f"emsdp.tlv_lists.{name}_mandatory", [])
            missing = [item for item in wanted if not any(alt in values for alt in item.split("|"))]
            if missing:
                return f"{name} without {', '.join(missing)}"
            if name == "session_start":
                return self._session_start(s, m, values, request, subscribers)
            if name == "manage_keys_request" and subscribers.authenticate(values["rand"], values["autn"]) is None:
                return "Manage Keys Request whose AUTN verifies under no PIXIT subscriber"
        if m.mac is not None and s.flow in started and (s.flow, m.session_id) not in self.sessions:
            return f"protected message on session {m.session_id}, which no Session Start of the capture set up"
        return None

    def _session_start(
        self, s: Seen, m: Message, values: dict[str, bytes], request: Message | None, subscribers: Subscribers
    ) -> str | None:
        if m.key_id != 0 or m.session_id == 0:
            return f"Session Start with Key ID {m.key_id} and Session ID {m.session_id}"
        try:
            config = decode_hse_config(self.codec.layout, values["hse_config"])
        except ValueError as exc:
            return f"Session Start's HSE configuration does not decode: {exc}"
        if config.get("key_agreement") not in self.binding.section("keys.root_by_key_agreement"):
            return f"Session Start names key agreement {config.get('key_agreement')!r}"
        found = subscribers.authenticate(values["rand"], values["autn"])
        if found is None:
            return "Session Start whose AUTN verifies under no PIXIT subscriber (MILENAGE MAC-A)"
        pixit = subscribers.pixit
        asked = tlv_values(request) if request is not None else {}
        try:
            eas_id = asked["enterprise_setup"].decode("utf-8") if "enterprise_setup" in asked else pixit.eas_id
            network = asked.get("serving_network")
            snn = network.decode("utf-8") if network is not None else pixit.serving_network_name
        except UnicodeDecodeError:
            eas_id, snn = pixit.eas_id, pixit.serving_network_name
        encoding = self.binding["emsdp.serving_network.encoding"]
        sn_id = pixit.serving_network_id if snn == pixit.serving_network_name else None
        sn_id = sn_id or serving_network_id(encoding, snn)
        run = AkaRun(s, found[0], values["rand"], values["autn"], config, found[1], found[2], eas_id, snn, sn_id)
        self.sessions[s.flow, m.session_id] = run
        return None


# ---- the search ---------------------------------------------------------------------------------------------


class Search:
    """One probe of one capture: the bindings it made (each once) and what each stage found."""

    def __init__(self, seen: Sequence[Seen], base: Mapping[str, Any], pixit: Any, candidates: dict[str, Candidate]):
        self.seen = list(seen)
        self.base = dict(base)  # the profile's binding overrides: the harness's reading
        self.subscribers = Subscribers(pixit)
        self.candidates = candidates
        self._views: dict[str, View | None] = {}
        self._keys: dict[tuple[Any, ...], dict[str, bytes] | None] = {}
        self.contradictions: list[dict[str, Any]] = []
        self.notes: list[str] = []

    @property
    def bindings_tried(self) -> int:
        return len(self._views)

    def view(self, assignment: Mapping[str, Any]) -> View | None:
        """The capture under the harness's binding with these values; None if they make no valid binding (two
        tags with one code, say)."""
        key = json.dumps(sorted(assignment.items()), default=str)
        if key not in self._views:
            try:
                binding = load_binding(self.base, dict(assignment))
            except BindingError:
                self._views[key] = None
            else:
                self._views[key] = View(self.seen, binding, self.subscribers)
        return self._views[key]

    # -- stage 1: layout --------------------------------------------------------------------------------------

    def layout(self) -> tuple[list[dict[str, Any]], dict[str, Finding]]:
        """The layout assignments still fitting best, and a finding per layout parameter (values to be narrowed
        by the protection stage)."""
        groups = groups_of(self.candidates, LAYOUT)
        chosen: dict[str, Any] = {}
        evaluated: dict[str, list[tuple[dict[str, Any], View]]] = {}
        for _round in range(2):
            for name, group in groups.items():
                tried = []
                for option in assignments(group):
                    view = self.view({**chosen, **option})
                    if view is not None:
                        tried.append((option, view))
                evaluated[name] = tried
                best = max(v.score for _, v in tried)
                chosen.update(next(o for o, v in tried if v.score == best))
        findings: dict[str, Finding] = {}
        tied_by_group: list[list[dict[str, Any]]] = []
        final = self.view(chosen)
        assert final is not None  # built in the loop
        for name, group in groups.items():
            tried = evaluated[name]
            best = max(v.score for _, v in tried)
            winners = [o for o, v in tried if v.score == best]
            deciding = [c.key for c in group if self._depends(c, tried)]
            tied = {json.dumps([w[k] for k in deciding]): {k: w[k] for k in deciding} for w in winners}
            tied_by_group.append(list(tied.values()))
            for c in group:
                findings[c.key] = self._layout_finding(c, c.key in deciding, winners, tried, final)
        layouts = [{}]
        for tied in tied_by_group:
            layouts = [{**a, **b} for a in layouts for b in tied][:MAX_LAYOUTS]
        self._layout_contradictions(final, evaluated, groups, findings)
        return [{**chosen, **layout} for layout in layouts], findings

    def _depends(self, candidate: Candidate, tried: list[tuple[dict[str, Any], View]]) -> bool:
        """Whether some datagram of the SUT reads otherwise when only this parameter changes."""
        by_rest: dict[str, list[View]] = {}
        for option, view in tried:
            rest = json.dumps({k: v for k, v in option.items() if k != candidate.key}, sort_keys=True)
            by_rest.setdefault(rest, []).append(view)
        for views in by_rest.values():
            for i, s in enumerate(self.seen):
                if s.from_sut and len({v.signature(i) for v in views}) > 1:
                    return True
        return False

    def _layout_finding(
        self,
        c: Candidate,
        depends: bool,
        winners: list[dict[str, Any]],
        tried: list[tuple[dict[str, Any], View]],
        final: View,
    ) -> Finding:
        candidates = list(c.values)
        if not depends:
            return Finding(c.key, UNDECIDED, c.base, [], candidates, None, "no datagram of the SUT depends on it")
        values = [v for v in c.values if any(w[c.key] == v for w in winners)]
        # the deciding message: the first of the SUT's datagrams that fits the chosen value and not another one
        evidence = None
        others = [v for o, v in tried if o[c.key] not in values]
        for i, s in enumerate(self.seen):
            if s.from_sut and final.fits[i] is None and any(v.fits[i] is not None for v in others):
                reason = next(v.fits[i] for v in others if v.fits[i] is not None)
                evidence = s.evidence(f"reads cleanly only under {values}; under another value: {reason}")
                break
        return Finding(c.key, DEFAULT, c.base, values, candidates, evidence)

    def _layout_contradictions(
        self,
        final: View,
        evaluated: dict[str, list[tuple[dict[str, Any], View]]],
        groups: dict[str, list[Candidate]],
        findings: dict[str, Finding],
    ) -> None:
        for i, s in enumerate(self.seen):
            if not s.from_sut or final.fits[i] is None:
                continue
            fits_somewhere = any(v.fits[i] is None for tried in evaluated.values() for _, v in tried)
            what = (
                f"fits no candidate layout: {final.fits[i]}"
                if not fits_somewhere
                else f"fits only layouts the SUT's other messages exclude: {final.fits[i]}"
            )
            self.contradictions.append(s.evidence(what))
            for name, group in groups.items():
                tried = evaluated[name]
                if any(v.fits[i] is None for _, v in tried):
                    continue
                for c in group:
                    views = [v for _, v in tried]
                    if len({v.signature(i) for v in views}) > 1 and findings[c.key].status != CONTRADICTED:
                        findings[c.key] = Finding(
                            c.key, CONTRADICTED, c.base, [], list(c.values), s.evidence(what), "no candidate fits"
                        )

    # -- stage 3: protection ----------------------------------------------------------------------------------

    def protection(self, view: View) -> tuple[dict[str, Finding], list[dict[str, Any]], int]:
        """A finding per protection parameter under one layout, the messages that contradict every candidate,
        and how many messages decided."""
        searched = [c for c in self.candidates.values() if c.stage == PROTECTION]
        groups: dict[tuple[str, ...], _Group] = {}
        for keys, s, fitting, binding in [*self._mac_checks(view, searched), *self._cipher_checks(view, searched)]:
            group = groups.setdefault(keys, _Group(keys))
            group.add(s, fitting, binding)
        contradictions = [g.contradiction for g in groups.values() if g.contradiction]
        joined: list[dict[str, Any]] = [{}]
        split: tuple[tuple[str, ...], dict[str, Any]] | None = None
        for group in groups.values():
            if group.contradiction or group.running is None:
                continue
            rows = [dict(zip(group.keys, row, strict=True)) for row in group.running]
            merged = [{**a, **b} for a in joined for b in rows if all(a.get(k, b[k]) == b[k] for k in b)]
            if not merged:
                what = f"its MAC fits no assignment the other messages leave ({', '.join(group.keys)})"
                split = (group.keys, group.history[-1][0].evidence(what))
                contradictions.append(split[1])
                break
            joined = merged
        findings = {}
        for c in searched:
            involved = [g for g in groups.values() if c.key in g.keys]
            bad = next((g.contradiction for g in involved if g.contradiction), None)
            if bad is None and split is not None and c.key in split[0]:
                bad = split[1]
            if bad is not None:
                findings[c.key] = Finding(c.key, CONTRADICTED, c.base, [], list(c.values), bad, "no candidate fits")
                continue
            values = [v for v in c.values if any(c.key in row and row[c.key] == v for row in joined)]
            if not values:
                reason = "no deciding message of the capture depends on it"
                if involved:
                    reason = "only echoed confidential data depends on it, and it deciphers under no candidate"
                findings[c.key] = Finding(c.key, UNDECIDED, c.base, [], list(c.values), None, reason)
                continue
            evidence = next((e for g in involved if (e := g.deciding(c, values)) is not None), None)
            findings[c.key] = Finding(c.key, DEFAULT, c.base, values, list(c.values), evidence)
        deciding = len({(s.pcap, s.frame) for g in groups.values() for s in g.messages})
        return findings, contradictions, deciding

    def relevant(self, view: View, searched: list[Candidate], plane: str, use: str, agreement: str) -> list[Candidate]:
        """The searched parameters a message's protection depends on: the MAC/COUNT construction and the
        derivation chain of the plane's key."""
        chain = []
        name = view.binding.get(f"protection.keys.{plane}_{use}")
        derivations = set(view.binding.children("keys.derivations"))
        root_key = f"keys.root_by_key_agreement.{agreement}"
        while name in derivations and name not in chain:
            chain.append(name)
            name = view.binding[f"keys.derivations.{name}.key"]
            if name == "root":
                name = view.binding.get(root_key)
        prefixes = tuple(f"keys.derivations.{n}." for n in chain)
        return [c for c in searched if c.key.startswith(("protection.", *prefixes)) or c.key == root_key]

    def keys_under(self, view: View, run: AkaRun, assignment: Mapping[str, Any]) -> dict[str, bytes] | None:
        derivation = {k: v for k, v in assignment.items() if k.startswith("keys.")}
        key = (id(view), run.seen.frame, run.seen.pcap, json.dumps(sorted(derivation.items()), default=str))
        if key not in self._keys:
            mapping = {**view.binding, **derivation}
            try:
                self._keys[key] = session_keys(
                    KeyHierarchy.from_binding(mapping),
                    rand=run.rand,
                    autn=run.autn,
                    config=run.config,
                    ck=run.ck,
                    ik=run.ik,
                    snn=run.snn,
                    eas_id=run.eas_id,
                    sn_id=run.sn_id,
                )
            except (NoSessionKeys, ValueError, KeyError):
                self._keys[key] = None
        return self._keys[key]

    def _deciding_messages(self, view: View) -> Iterable[tuple[int, Seen, Message, AkaRun]]:
        """The protected messages that decide: the SUT's, and its peer's that the SUT answered."""
        by_flow: dict[Any, list[int]] = {}
        for i, s in enumerate(view.seen):
            by_flow.setdefault(s.flow, []).append(i)
        for indices in by_flow.values():
            for position, i in enumerate(indices):
                s, m = view.seen[i], view.messages[i]
                run = view.sessions.get((s.flow, m.session_id)) if m.plane else None
                if m.mac is None or run is None or m.problems:
                    continue
                if not s.from_sut:
                    following = indices[position + 1] if position + 1 < len(indices) else None
                    if following is None or not self._answers(view, following, m):
                        continue
                yield i, s, m, run

    def _answers(self, view: View, index: int, request: Message) -> bool:
        s, m = view.seen[index], view.messages[index]
        return (
            s.from_sut
            and view.fits[index] is None
            and m.session_id == request.session_id
            and m.command_name != "message_reject"
        )

    def _mac_checks(
        self, view: View, searched: list[Candidate]
    ) -> Iterable[tuple[tuple[str, ...], Seen, set[tuple[Any, ...]], bool]]:
        for _i, s, m, run in self._deciding_messages(view):
            relevant = self.relevant(view, searched, m.plane, "integrity", run.config.get("key_agreement"))
            if not relevant:
                continue
            direction = DOWNLINK if s.from_sut else UPLINK
            fitting = set()
            for assignment, security, keys in self._keyed(view, run, relevant):
                try:
                    if security.verify(m, keys, direction):
                        fitting.add(tuple(assignment[c.key] for c in relevant))
                except KeyError:
                    continue
            yield tuple(c.key for c in relevant), s, fitting, True

    def _keyed(
        self, view: View, run: Any, relevant: list[Candidate]
    ) -> Iterable[tuple[dict[str, Any], MessageSecurity, dict[str, bytes]]]:
        """Each assignment of the relevant candidates whose keys derive, with the protection it reads under."""
        for assignment in assignments(relevant):
            keys = self.keys_under(view, run, assignment)
            if keys is not None:
                yield assignment, MessageSecurity(view.codec, {**view.binding, **assignment}), keys

    def _cipher_checks(
        self, view: View, searched: list[Candidate]
    ) -> Iterable[tuple[tuple[str, ...], Seen, set[tuple[Any, ...]], bool]]:
        """Confidential user data the SUT echoed: uplink and echo decipher to the same octets only under the
        SUT's ciphering key and COUNT. Supporting evidence only: a SUT need not echo."""
        messages = list(self._deciding_messages(view))
        for (i, s, m, run), nxt in itertools.pairwise(messages):
            j, s2, m2, _ = nxt
            if s.from_sut or not s2.from_sut or m.plane != "up" or m2.plane != "up" or j != i + 1:
                continue
            if run.config.get("service") != "up_confidential":
                continue
            relevant = self.relevant(view, searched, "up", "ciphering", run.config.get("key_agreement"))
            if not relevant:
                continue
            fitting = set()
            for assignment, security, keys in self._keyed(view, run, relevant):
                up = security.crypt(m.data, keys, "up", m.session_id, m.counter, m.scheme, UPLINK)
                down = security.crypt(m2.data, keys, "up", m2.session_id, m2.counter, m2.scheme, DOWNLINK)
                if up == down:
                    fitting.add(tuple(assignment[c.key] for c in relevant))
            yield tuple(c.key for c in relevant), s2, fitting, False


class _Group:
    """The checks that depend on one set of parameters, intersected in capture order."""

    def __init__(self, keys: tuple[str, ...]):
        self.keys = keys
        self.running: set[tuple[Any, ...]] | None = None
        self.history: list[tuple[Seen, set[tuple[Any, ...]]]] = []
        self.messages: list[Seen] = []
        self.contradiction: dict[str, Any] | None = None

    def add(self, s: Seen, fitting: set[tuple[Any, ...]], binding: bool) -> None:
        """One message's fitting assignments. A MAC that fits none (of those left) contradicts; a ciphertext
        check that fits none is only set aside (a SUT need not echo)."""
        self.messages.append(s)
        if self.contradiction is not None:
            return
        narrowed = fitting if self.running is None else self.running & fitting
        if not narrowed:
            if binding:
                why = "under no candidate" if not fitting else "only under candidates earlier messages exclude"
                self.contradiction = s.evidence(f"MAC verifies {why} ({', '.join(self.keys)})")
            return
        self.running = narrowed
        self.history.append((s, narrowed))

    def deciding(self, c: Candidate, values: list[Any]) -> dict[str, Any] | None:
        """The first message after which this group leaves `c` exactly `values` (else its last message)."""
        index = self.keys.index(c.key)
        for s, running in self.history:
            if sorted({row[index] for row in running}, key=c.values.index) == values:
                return s.evidence(f"its MAC verifies only with {c.key} in {values}")
        return self.history[-1][0].evidence(f"its MAC verifies only with {c.key} in {values}") if self.history else None


# ---- the whole probe ----------------------------------------------------------------------------------------


def probe_captures(pcaps: Iterable[str | Path], profile: Any, *, port: int | None = None) -> ProbeResult:
    """Probe the SUT a profile describes from pcaps of exchanges with it (UDP to or from its HSE port)."""
    paths = [str(p) for p in pcaps]
    result = probe_datagrams(read_captures(paths, port or profile.hse_endpoint[1]), profile)
    result.pcaps = [{"path": p, "sha256": file_sha256(p)} for p in paths]
    return result


def probe_datagrams(seen: Sequence[Seen], profile: Any) -> ProbeResult:
    """The search over datagrams already read: layout first, then, under each layout still tied, protection."""
    candidates = candidates_of(profile.binding)
    search = Search(seen, profile.profile.binding, profile.pixit, candidates)
    layouts, findings = search.layout()
    outcomes = []
    for layout in layouts:
        view = search.view(layout)
        assert view is not None  # the layout stage made it
        outcomes.append((layout, *search.protection(view)))
    kept = [o for o in outcomes if not o[2]] or outcomes
    for key, finding in findings.items():  # layouts whose MACs contradict are out
        if finding.status == DEFAULT:
            finding.values = [v for v in finding.values if any(o[0].get(key, finding.base) == v for o in kept)]
    for key in kept[0][1]:
        merged = [o[1][key] for o in kept]
        first = merged[0]
        if first.status == DEFAULT:
            first.values = [v for v in candidates[key].values if any(v in f.values for f in merged)]
        findings[key] = first
    for c in candidates.values():
        if c.key not in findings:
            findings[c.key] = Finding(
                c.key, UNDECIDED, c.base, [], list(c.values), None, "the probe judges layout and protection only"
            )
    for finding in findings.values():
        if finding.status == DEFAULT:
            _settle(finding)
    contradictions = search.contradictions + (kept[0][2] if kept[0][2] else [])
    if not any(s.from_sut for s in seen):
        search.notes.append(
            f"no datagram of the capture comes from the SUT's port {profile.hse_endpoint[1]}: nothing could be "
            "decided (give the port the SUT used with --port)"
        )
    return ProbeResult(
        findings={c: findings[c] for c in candidates},
        contradictions=contradictions,
        pcaps=[],
        sut_messages=sum(1 for s in seen if s.from_sut),
        deciding_messages=max((o[3] for o in kept), default=0),
        bindings_tried=search.bindings_tried,
        notes=search.notes,
    )


def _settle(finding: Finding) -> None:
    """The status of a parameter the messages judged, from the values that fit."""
    if not finding.values:
        finding.status, finding.reason = CONTRADICTED, "no candidate fits every message"
    elif len(finding.values) > 1:
        finding.status = AMBIGUOUS
        finding.reason = f"{len(finding.values)} candidates fit every message: {finding.values}"
    elif finding.values[0] == finding.base:
        finding.status, finding.reason = DEFAULT, "only the harness's reading fits"
    else:
        finding.status = INFERRED
        finding.reason = f"only {finding.values[0]!r} fits, not the harness's {finding.base!r}"
