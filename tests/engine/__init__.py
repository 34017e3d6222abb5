"""Helpers shared by the suite tests: running cases against an embedded reference SUT and judging faults."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from conformance.engine.embedded import embedded_reference
from conformance.engine.model import Case
from conformance.engine.results import Result, Verdict
from conformance.engine.runner import run_case
from conformance.profile import LoadedProfile


def failing_verdict(case: Case) -> Verdict:
    """What the runner gives this case when the SUT does not meet it."""
    return Verdict.FAIL if case.level == "shall" else Verdict.WARN


def explain(result: Result) -> str:
    return f"{result.case}: {result.verdict.value}: {result.reason}"


def run_against_reference(
    profile: LoadedProfile, cases: Iterable[Case], out: Path, faults: frozenset[str] = frozenset()
) -> dict[str, Result]:
    """Run cases, in order, against one embedded reference SUT of the profile (with these faults on)."""
    with embedded_reference(profile, faults) as (running, certs):
        return {case.id: run_case(case, running, out, certs=certs) for case in cases}


def assert_fault_caught(
    profile: LoadedProfile, by_id: Mapping[str, Case], case_ids: list[str], fault: str, out: Path
) -> None:
    """Each catching case gets its failing verdict against the reference with this single fault on."""
    results = run_against_reference(profile, (by_id[i] for i in case_ids), out, frozenset({fault}))
    for result in results.values():
        assert result.verdict is failing_verdict(by_id[result.case]), f"{fault} not caught: {explain(result)}"
