"""Running one case: applicability, the steps in order, the verdict and its evidence."""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any

from conformance.engine.context import Context, NotApplicable
from conformance.engine.model import Case
from conformance.engine.results import CheckFailed, Inconclusive, Result, Verdict
from conformance.engine.verbs import VERBS
from conformance.keyserver.certs import CertificateDirectory
from conformance.profile import LoadedProfile
from conformance.report.secrets import check_secrets, context_secrets


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
    result = Result(
        case.id,
        case.title,
        case.level,
        list(case.refs),
        Verdict.PASS,
        started=time.time(),
        requirements=list(case.requirements),
    )
    reason = applicable(case, profile)
    if reason is not None:
        result.verdict, result.reason = Verdict.NOT_APPLICABLE, reason
        return result
    result.binding_dependent = rests_on(case, profile)
    pcap = out_dir / "pcaps" / f"{case.id}.pcap"
    pcap.parent.mkdir(parents=True, exist_ok=True)
    ctx = Context(profile, pcap, certs=certs)
    try:
        for step in case.steps:
            try:
                VERBS[step.verb](ctx, step.args)
            except CheckFailed as failed:
                result.verdict = Verdict.FAIL if case.level == "shall" else Verdict.WARN
                result.reason = str(failed)
                result.expected, result.observed = failed.expected, failed.observed
                result.failed_step = step.line
                result.secrets |= check_secrets(failed.expectation, failed.expected, failed.observed)
                break
            except Inconclusive as exc:
                result.verdict, result.reason, result.failed_step = Verdict.INCONCLUSIVE, str(exc), step.line
                break
            except NotApplicable as exc:
                result.verdict, result.reason = Verdict.NOT_APPLICABLE, str(exc)
                break
    except Exception as exc:  # a harness or environment failure: an error verdict with the traceback
        result.verdict = Verdict.ERROR
        result.reason = f"{type(exc).__name__}: {exc}"
        result.observed = traceback.format_exc(limit=8)
    finally:
        ctx.close()
        result.duration = time.time() - result.started
        result.secrets |= context_secrets(ctx)  # so that outputs can mask them
    result.pcap = str(pcap)
    try:
        result.trace = ctx.trace()
    except Exception as exc:  # evidence must not turn a verdict into a crash
        result.trace = [{"error": f"trace unreadable: {exc}"}]
    return result
