"""Running one case: applicability, the steps in order, the verdict and its evidence."""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path
from typing import Any

from conformance.engine.context import Context
from conformance.engine.liveness import Liveness
from conformance.engine.model import Case
from conformance.engine.results import (
    CheckFailed,
    Inconclusive,
    NoAnswer,
    NotApplicable,
    NotJudged,
    NotRun,
    Result,
    Unanswered,
    Verdict,
)
from conformance.engine.verbs import VERBS
from conformance.keyserver.certs import CertificateDirectory
from conformance.masking import check_secrets
from conformance.profile import LoadedProfile


def applicable(case: Case, profile: LoadedProfile) -> str | None:
    """None if the case applies to this SUT, else why not (SUT kind, or a PICS item it does not claim).

    A PICS term is a path into the profile's pics: `identities.suci` (a value in a list), `manage_keys_from_hse`
    (a true flag); `not <term>` inverts it.
    """
    if case.sut != profile.sut.kind:
        return f"for SUT kind {case.sut}, this SUT is a {profile.sut.kind}"
    for term in case.pics:
        negate = term.startswith("not ")
        path = term.removeprefix("not ").strip()
        if _pics_claims(profile.pics, path) == negate:
            return f"PICS: the SUT {'claims' if negate else 'does not claim'} {path}"
    return None


def _pics_claims(pics: Any, path: str) -> bool:
    head, _, tail = path.partition(".")
    value = getattr(pics, head, None)
    if tail:
        return isinstance(value, list) and tail in value
    return bool(value)


def rests_on(case: Case, profile: LoadedProfile) -> list[dict[str, Any]]:
    """The binding values the case rests on that no spec clause confirms: its verdict says so."""
    found = []
    for key in case.rests_on:
        param = profile.binding.param(key)
        if not param.confirmed:
            found.append({"key": key, "value": param.value, "basis": param.basis, "source": param.source})
    return found


def run_case(case: Case, profile: LoadedProfile, out_dir: Path, *, certs: CertificateDirectory | None = None) -> Result:
    """The case's verdict with its evidence. Never raises: whatever goes wrong in the harness around the case
    (setting it up, a step, closing it, reading its evidence) is an `error` verdict with the traceback."""
    result = case_result(case, Verdict.PASS)
    ctx: Context | None = None
    try:
        reason = applicable(case, profile)
        if reason is not None:
            result.verdict, result.reason = Verdict.NOT_APPLICABLE, reason
            return result
        result.binding_dependent = rests_on(case, profile)
        pcap = out_dir / "pcaps" / f"{case.id}.pcap"
        pcap.parent.mkdir(parents=True, exist_ok=True)
        result.pcap = str(pcap)
        ctx = Context(profile, pcap, certs=certs)
        _run_steps(case, ctx, result)
    except Exception:  # a harness or environment failure: an error verdict with the traceback
        _error(result)
    finally:
        if ctx is not None:
            _finish(ctx, result)
        result.duration = time.time() - result.started
    return result


def _run_steps(case: Case, ctx: Context, result: Result) -> None:
    """The steps in order until one does not pass; absences must be followed by a proof of life."""
    liveness = Liveness()
    for step in case.steps:
        try:
            VERBS[step.verb](ctx, step.args)
        except (CheckFailed, Inconclusive) as exc:
            absence = liveness.unproven(step)
            result.failed_step = step.line
            result.unanswered = isinstance(exc, NoAnswer | Unanswered)
            if absence is not None and isinstance(exc, NoAnswer | Inconclusive) and not isinstance(exc, NotJudged):
                result.verdict = Verdict.INCONCLUSIVE
                result.reason = liveness.stopped_answering(absence, str(exc))
            elif isinstance(exc, CheckFailed):
                result.verdict = Verdict.FAIL if case.level == "shall" else Verdict.WARN
                result.reason = str(exc)
                result.expected, result.observed = exc.expected, exc.observed
                result.secrets |= check_secrets(exc.expectation, exc.expected, exc.observed)
            else:
                result.verdict, result.reason = Verdict.INCONCLUSIVE, str(exc)
            return
        except NotApplicable as exc:
            result.verdict, result.reason = Verdict.NOT_APPLICABLE, str(exc)
            return
        except NotRun as exc:
            result.verdict, result.reason, result.failed_step = Verdict.NOT_RUN, str(exc), step.line
            return
        liveness.passed(step)
    unproven = liveness.left_unproven()
    if unproven:
        result.verdict, result.reason = Verdict.INCONCLUSIVE, unproven


def _finish(ctx: Context, result: Result) -> None:
    """Close the case's roles and read its evidence; a failure here is the harness's, never the SUT's."""
    result.notes = list(ctx.saved.get("unchecked", []))
    try:
        ctx.close()
        result.secrets |= ctx.held_secrets()  # so that outputs can mask them
    except Exception:
        _error(result)
    try:
        result.trace = ctx.trace()
    except Exception as exc:  # evidence must not turn a verdict into a crash
        result.trace = [{"error": f"trace unreadable: {type(exc).__name__}: {exc}"}]


def _error(result: Result) -> None:
    kind, exc, _ = sys.exc_info()
    result.verdict = Verdict.ERROR
    result.reason = f"{kind.__name__ if kind else 'error'}: {exc}"
    result.observed = traceback.format_exc(limit=8)


def case_result(case: Case, verdict: Verdict, reason: str = "", **fields: Any) -> Result:
    """A result of this case, starting now (run_case's, or one for a case that did not go through it)."""
    return Result(
        case.id,
        case.title,
        case.level,
        list(case.refs),
        verdict,
        reason=reason,
        started=time.time(),
        requirements=list(case.requirements),
        **fields,
    )


def error_result(case: Case, exc: BaseException) -> Result:
    """The `error` verdict of a case whose run broke outside run_case (e.g. while its result was written)."""
    observed = "".join(traceback.format_exception(exc, limit=8))
    return case_result(case, Verdict.ERROR, f"{type(exc).__name__}: {exc}", observed=observed)
