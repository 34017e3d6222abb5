"""Checks on loaded cases that need the verb and matcher registries: unknown names, duplicate ids, and
negative cases that do not say how the SUT must react. Every problem names its file and line."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from conformance.engine.matchers import MATCHERS
from conformance.engine.model import Case, LintReport, load_cases
from conformance.engine.verbs import VERBS

REACTIONS = {"message_reject", "silence"}  # what a negative case must expect at least once


def lint_cases(cases: Iterable[Case], report: LintReport) -> None:
    seen: dict[str, str] = {}
    for case in cases:
        if case.id in seen:
            report.add(case.path, case.line, f"case id {case.id} is also used at {seen[case.id]}")
        seen[case.id] = case.location
        reacts = False
        for step in case.steps:
            if step.verb not in VERBS:
                report.add(
                    case.path,
                    step.line,
                    f"case {case.id}: unknown verb {step.verb!r}; known: {', '.join(sorted(VERBS))}",
                )
                continue
            for name in step.args.get("check") or {}:
                if name not in MATCHERS:
                    report.add(
                        case.path,
                        step.line,
                        f"case {case.id}: unknown matcher {name!r}; known: {', '.join(sorted(MATCHERS))}",
                    )
            if step.verb == "expect" and step.args.get("_value") in REACTIONS:
                reacts = True
            if step.verb == "eas" and (step.args.get("with") or {}).get("status") not in (None, "registered"):
                reacts = True
            if step.verb == "eas" and step.args.get("_value") == "fetch_after_deregister":
                reacts = True
        if case.negative and not reacts:
            report.add(
                case.path,
                case.line,
                f"case {case.id}: a negative case must expect the SUT's reaction "
                "(expect: message_reject or silence, or an EAS status)",
            )


def load_suite(paths: Iterable[Path]) -> tuple[list[Case], LintReport]:
    """Load and lint: what the plugin, `list`, `explain` and the tests all use."""
    report = LintReport()
    cases = load_cases(paths, report)
    lint_cases(cases, report)
    return cases, report
