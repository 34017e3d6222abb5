"""Checks on loaded cases that need the verb and matcher registries and the requirement ledger: unknown names,
duplicate ids, negative cases that do not say how the SUT must react, and requirement ids the ledger does not
know. Every problem names its file and line."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from conformance.engine.emse_verbs import DTLS_ACTIONS, DTLS_EXPECT, DTLS_OPTIONS, EMKS_ACTIONS, EXCHANGE_CHECKS
from conformance.engine.matchers import KEY_SPEC_FIELDS, MATCHERS
from conformance.engine.model import Case, LintReport, Step, load_cases
from conformance.engine.verbs import EAS_ACTIONS, EAS_OPTIONS, RAW_BODIES, VERBS
from conformance.requirements import Ledger, LedgerError, shipped_ledger

REACTIONS = {"message_reject", "silence"}  # what a negative case must expect at least once

# Rule "requirements mandatory": every case names at least one ledger requirement it checks. Set it to False
# only while a new suite is being mapped onto the ledger; unknown ids are refused either way.
REQUIREMENTS_MANDATORY = True


def lint_cases(cases: Iterable[Case], report: LintReport, ledger: Ledger | None = None) -> None:
    """Every problem of the cases; `ledger` defaults to the shipped one."""
    if ledger is None:
        try:
            ledger = shipped_ledger()
        except LedgerError as exc:
            report.errors.extend(exc.problems)
            ledger = Ledger([], [])
    seen: dict[str, str] = {}
    for case in cases:
        _lint_requirements(case, ledger, report)
        if REQUIREMENTS_MANDATORY:
            _lint_requirements_present(case, report)
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
            known_checks = EXCHANGE_CHECKS if step.verb == "emks" else MATCHERS
            for name in step.args.get("check") or {}:
                if name not in known_checks:
                    report.add(
                        case.path,
                        step.line,
                        f"case {case.id}: unknown matcher {name!r}; known: {', '.join(sorted(known_checks))}",
                    )
            if step.verb == "expect" and step.args.get("_value") in REACTIONS:
                reacts = True
            if step.verb in ("emks", "dtls"):
                reacts |= _lint_emse_step(case, step, report)
            if step.verb == "eas":
                _lint_eas(case, step, report)
                options = step.args.get("with") or {}
                key = options.get("key")
                if options.get("status") not in (None, "registered") or (isinstance(key, dict) and "expect" in key):
                    reacts = True
                if step.args.get("_value") in ("fetch_after_deregister", "old_tls"):
                    reacts = True
        if case.negative and not reacts:
            report.add(
                case.path,
                case.line,
                f"case {case.id}: a negative case must expect the SUT's reaction "
                "(expect: message_reject or silence, an EAS status, a refused DTLS handshake or no key request)",
            )


def _lint_emse_step(case: Case, step: Step, report: LintReport) -> bool:
    """An emks step names a known action, a dtls step known options and outcome; True if the step states
    how the SUT must react (a refused handshake, no key request)."""
    options = step.args.get("with") or {}
    if step.verb == "emks":
        if step.args.get("_value") not in EMKS_ACTIONS:
            report.add(case.path, step.line, f"case {case.id}: unknown emks action; known: {', '.join(EMKS_ACTIONS)}")
        return step.args.get("_value") in ("no_key_request", "no_deleted_session")
    if step.args.get("_value") not in DTLS_ACTIONS:
        report.add(case.path, step.line, f"case {case.id}: unknown dtls action; known: {', '.join(DTLS_ACTIONS)}")
    if step.args.get("_value") == "offer_dtls_1_0":
        return True
    for name in sorted(set(options) - set(DTLS_OPTIONS)):
        report.add(
            case.path, step.line, f"case {case.id}: unknown dtls option {name!r}; known: {', '.join(DTLS_OPTIONS)}"
        )
    if options.get("expect", "established") not in DTLS_EXPECT:
        report.add(case.path, step.line, f"case {case.id}: dtls expect must be one of {', '.join(DTLS_EXPECT)}")
    return options.get("expect") == "refused"


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


def _lint_eas(case: Case, step: Step, report: LintReport) -> None:
    """An eas step names a known action and known options (and a known raw body or key form)."""
    action = step.args.get("_value")
    if action not in EAS_ACTIONS:
        report.add(
            case.path, step.line, f"case {case.id}: unknown eas action {action!r}; known: {', '.join(EAS_ACTIONS)}"
        )
    options = step.args.get("with") or {}
    for name in sorted(set(options) - set(EAS_OPTIONS)):
        report.add(
            case.path, step.line, f"case {case.id}: unknown eas option {name!r}; known: {', '.join(EAS_OPTIONS)}"
        )
    if action == "post_raw" and options.get("body") not in RAW_BODIES:
        report.add(
            case.path,
            step.line,
            f"case {case.id}: post_raw needs body one of {', '.join(RAW_BODIES)}, got {options.get('body')!r}",
        )
    key = options.get("key")
    if isinstance(key, dict):
        unknown = sorted(set(key) - set(KEY_SPEC_FIELDS))
        if unknown or "provisioned" not in key or key.get("expect", "unknown") != "unknown":
            report.add(
                case.path,
                step.line,
                f"case {case.id}: key must be session, next, old, bogus or {{provisioned: N, expect: unknown, "
                f"key_id: flipped|<hex>}}, got {key!r}",
            )


def load_suite(paths: Iterable[Path]) -> tuple[list[Case], LintReport]:
    """Load and lint: what the plugin, `list`, `explain` and the tests all use."""
    report = LintReport()
    cases = load_cases(paths, report)
    lint_cases(cases, report)
    return cases, report
