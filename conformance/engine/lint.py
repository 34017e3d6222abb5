"""Checks on loaded cases that need the verb and matcher registries and the requirement ledger: unknown names,
every step's value, options and matcher arguments against its verb's declared schema (engine.schema), duplicate
ids, negative cases that do not say how the SUT must react, and requirement ids the ledger does not know. Every
problem names its file and line, and an unknown name comes with a did-you-mean suggestion."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from conformance.binding.loader import load_binding
from conformance.engine.liveness import lint_proofs
from conformance.engine.model import Case, LintReport, load_cases
from conformance.engine.schema import StepChecker
from conformance.engine.verbs import VERB_SCHEMAS, VERBS
from conformance.requirements import Ledger, LedgerError, shipped_ledger

REACTIONS = {"message_reject", "silence", "silence_or_reject"}  # what a negative case must expect at least once

# Rule "requirements mandatory": every case names at least one ledger requirement it checks. Set it to False
# only while a new suite is being mapped onto the ledger; unknown ids are refused either way.
REQUIREMENTS_MANDATORY = True


def lint_cases(
    cases: Iterable[Case],
    report: LintReport,
    ledger: Ledger | None = None,
    binding: Mapping[str, Any] | None = None,
) -> None:
    """Every problem of the cases; `ledger` defaults to the shipped one, `binding` (the names the steps' schemas
    take from it: commands, causes, statuses ...) to the default binding."""
    if ledger is None:
        try:
            ledger = shipped_ledger()
        except LedgerError as exc:
            report.errors.extend(exc.problems)
            ledger = Ledger([], [])
    checker = StepChecker(binding if binding is not None else load_binding())
    seen: dict[str, str] = {}
    for case in cases:
        _lint_requirements(case, ledger, report)
        if REQUIREMENTS_MANDATORY:
            _lint_requirements_present(case, report)
        lint_proofs(case, report)
        if case.id in seen:
            report.add(case.path, case.line, f"case id {case.id} is also used at {seen[case.id]}")
        seen[case.id] = case.location
        reacts = False
        for step in case.steps:
            if step.verb not in VERBS:
                close = difflib.get_close_matches(step.verb, list(VERBS), n=1)
                report.add(
                    case.path,
                    step.line,
                    f"case {case.id}: unknown verb {step.verb!r}"
                    f"{f'; did you mean {close[0]!r}?' if close else ''}; known: {', '.join(sorted(VERBS))}",
                )
                continue
            schema = VERB_SCHEMAS.get(step.verb)
            for problem in checker.problems(schema, step.args) if schema is not None else ():
                report.add(case.path, step.line, f"case {case.id}: {step.verb}: {problem}")
            value, options = step.args.get("_value"), step.args.get("with")
            options = options if isinstance(options, dict) else {}
            if step.verb in ("expect", "from_ue") and value in REACTIONS:
                reacts = True
            if step.verb == "emks" and value in ("no_key_request", "no_deleted_session"):
                reacts = True
            if step.verb == "dtls" and (value == "offer_dtls_1_0" or options.get("expect") == "refused"):
                reacts = True
            if step.verb == "key_client":
                key = options.get("key")
                if options.get("status") not in (None, "registered") or (isinstance(key, dict) and "expect" in key):
                    reacts = True
                if step.args.get("_value") in ("fetch_after_deregister", "old_tls", "plain_http", "http_upgrade"):
                    reacts = True
        if case.negative and not reacts:
            report.add(
                case.path,
                case.line,
                f"case {case.id}: a negative case must expect the SUT's reaction "
                "(expect or from_ue: message_reject or silence, an EAS status, a refused DTLS handshake or no key "
                "request)",
            )


def _lint_requirements(case: Case, ledger: Ledger, report: LintReport) -> None:
    """Each requirement id a case names is in the ledger and concerns the case's SUT kind."""
    for rid in case.requirements:
        requirement = ledger.get(rid)
        if requirement is None:
            report.add(case.path, case.line, f"case {case.id}: unknown requirement {rid!r}{ledger.suggest(rid)}")
        elif case.sut not in requirement.sut:
            report.add(
                case.path,
                case.line,
                f"case {case.id}: requirement {rid} concerns {', '.join(requirement.sut)}, not {case.sut} "
                f"({requirement.location})",
            )


def _lint_requirements_present(case: Case, report: LintReport) -> None:
    """Rule "requirements mandatory" (REQUIREMENTS_MANDATORY): a case names the requirements it checks."""
    if not case.requirements:
        report.add(
            case.path,
            case.line,
            f"case {case.id}: requirements must name at least one requirement id of the ledger "
            "(conformance/requirements/*.yaml)",
        )


def load_suite(paths: Iterable[Path], binding: Mapping[str, Any] | None = None) -> tuple[list[Case], LintReport]:
    """Load and lint (against `binding`, default the default binding): what the plugin, `list`, `explain` and the
    tests all use."""
    report = LintReport()
    cases = load_cases(paths, report)
    lint_cases(cases, report, binding=binding)
    return cases, report
