"""Absence and proof of life (design.md 7a): silence, a refused connection or a missing request prove nothing
alone, since a dead or crashed SUT gives them too. A step that expects absence counts only when a later step of
the same case shows the SUT still serving on the same interface; the linter refuses a case without one, and the
runner makes the case inconclusive when the proof does not come.

Each step is classified here, once, for both: `evidence(step)` says whether it expects absence, proves life, or
neither, and on which interface of the SUT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conformance.engine.model import Case, LintReport, Step

ABSENCE, PROOF = "absence", "proof"

# The SUT's interfaces a step talks to: its EMSDP endpoint (UDP; a UE's, towards the harness's HSE), its key server
# (HTTPS), its DTLS endpoint (an EMSE towards UEs), and the requests it makes as a key-server client (an EMSE
# towards the harness's EMKS).
EMSDP, KEY_SERVER, DTLS, KEY_CLIENT = "EMSDP endpoint", "key server", "DTLS endpoint", "key-server client"


@dataclass(frozen=True)
class Evidence:
    kind: str  # ABSENCE or PROOF
    interface: str


def evidence(step: Step) -> Evidence | None:
    """What the step shows when it passes: that the SUT did not do something (ABSENCE), that it answered
    (PROOF), or neither (None: it only sends, waits, or changes the harness's own peers)."""
    value = step.args.get("_value")
    options: dict[str, Any] = step.args.get("with") or {}
    if step.verb in ("start_session", "probe"):
        return Evidence(PROOF, EMSDP)
    if step.verb == "expect":
        return Evidence(ABSENCE if value in ("silence", "silence_or_reject") else PROOF, EMSDP)
    if step.verb == "from_ue":  # a UE under test: the harness's HSE heard it, or heard nothing
        return Evidence(ABSENCE if value in ("silence", "silence_or_reject") else PROOF, EMSDP)
    if step.verb == "ue_session":
        return Evidence(PROOF, EMSDP)
    if step.verb == "key_client":
        # refusals: a handshake below the minimum version, a certificate refused, HTTP in the clear on the TLS
        # port (plain or asking an RFC 2817 upgrade): a dead key server gives each of them too
        refused = value in ("old_tls", "plain_http", "http_upgrade") or options.get("status") == "refused"
        return Evidence(ABSENCE if refused else PROOF, KEY_SERVER)
    if step.verb == "dtls":
        if value == "offer_dtls_1_0" or options.get("expect") == "refused":
            return Evidence(ABSENCE, DTLS)
        return None if options.get("expect") == "any" else Evidence(PROOF, DTLS)
    if step.verb == "emks":
        if value in ("no_key_request", "no_deleted_session"):
            return Evidence(ABSENCE, KEY_CLIENT)
        if value in ("registration", "key_request", "deregistration"):
            return Evidence(PROOF, KEY_CLIENT)
    return None


def describe(step: Step) -> str:
    """The step as a person finds it in the case file: `line 12 (expect silence)`."""
    value = step.args.get("_value")
    return f"line {step.line} ({step.verb}{' ' + str(value) if isinstance(value, str) and value else ''})"


class Liveness:
    """What the runner tracks through one case: the absences seen and not yet followed by a proof of life."""

    def __init__(self) -> None:
        self.pending: dict[str, Step] = {}  # interface -> the first absence step not yet proven

    def passed(self, step: Step) -> None:
        seen = evidence(step)
        if seen is None:
            return
        if seen.kind == ABSENCE:
            self.pending.setdefault(seen.interface, step)
        else:
            self.pending.pop(seen.interface, None)

    def unproven(self, step: Step) -> Step | None:
        """The absence a failure of this step leaves unproven (it would have been its proof of life)."""
        seen = evidence(step)
        if seen is None or seen.kind != PROOF:
            return None
        return self.pending.get(seen.interface)

    def stopped_answering(self, absence: Step, detail: str) -> str:
        return f"the SUT stopped answering after {describe(absence)}: {detail}"

    def left_unproven(self) -> str | None:
        if not self.pending:
            return None
        steps = sorted(self.pending.values(), key=lambda s: s.line)
        return "no later step showed the SUT still serving after " + ", ".join(describe(s) for s in steps)


def lint_proofs(case: Case, report: LintReport) -> None:
    """Every step that expects absence is followed, in the same case, by a step that shows the SUT serving on
    the same interface."""
    for index, step in enumerate(case.steps):
        seen = evidence(step)
        if seen is None or seen.kind != ABSENCE:
            continue
        later = (evidence(s) for s in case.steps[index + 1 :])
        if not any(e is not None and e.kind == PROOF and e.interface == seen.interface for e in later):
            report.add(
                case.path,
                step.line,
                f"case {case.id}: {describe(step)} expects absence on the SUT's {seen.interface}, and no later step "
                f"shows the SUT still serving there (a proof of life: e.g. a valid exchange on the same session, "
                f"`probe: session`, a valid registration, a completed handshake, a UE's message `from_ue`)",
            )
