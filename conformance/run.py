"""`best-conformance run`: one conformance run through the pytest plugin, accounted for, and its exit code.

pytest runs the cases (design.md 4); this module builds its arguments, checks afterwards that every case pytest
collected has its result line, and turns the run's decision (compliance.json) into the exit code: 0 only when
the decision is pass.
"""

from __future__ import annotations

import contextlib
import datetime
import difflib
import json
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from conformance.engine.results import load_results
from conformance.exit_codes import EXIT_FAIL, EXIT_HARNESS, EXIT_PASS, EXIT_USAGE
from conformance.requirements.ledger import SUT_KINDS

if TYPE_CHECKING:
    from conformance.fuzz.campaign import Budget
    from conformance.fuzz.findings import FuzzReport
    from conformance.profile import LoadedProfile


class RunError(ValueError):
    """Bad input to a run, found before it starts: one line naming it and the fix (exit 2)."""


@dataclass(frozen=True)
class RunOptions:
    profile: str
    embedded: bool
    faults: tuple[str, ...] = ()
    keyword: str | None = None
    reports: str = "reports"
    workers: int | None = None
    reveal_secrets: bool = False
    baseline: str | None = None
    strict_baseline: bool = False
    stop_after: int | None = None
    run_dir: str | None = None  # the run folder (default: a new one under `reports`)
    case_files: tuple[str, ...] = ()  # run these case files (e.g. a fuzz finding) instead of the kind's suite


def check_faults(options: RunOptions) -> None:
    """Fault names are known (with a did-you-mean), and only switched on where the harness runs the SUT."""
    if not options.faults:
        return
    if not options.embedded:
        raise RunError(
            "--fault switches on a fault of the embedded reference; this run tests the SUT the profile points at "
            "(add --reference to test the reference the profile describes)"
        )
    from conformance.faults import BY_NAME

    for name in options.faults:
        if name not in BY_NAME:
            close = difflib.get_close_matches(name, BY_NAME, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise RunError(f"--fault {name!r} is not in the catalogue; {hint}known: {', '.join(sorted(BY_NAME))}")


def execute(options: RunOptions, live: bool = True) -> tuple[Path, Outcome]:
    """Check the input, run the cases through pytest (with live progress, unless `live` is false) into a new run
    folder, and account for them: the folder and how the run ended. Raises RunError on bad input, before
    anything runs, or when -k matched no case."""
    from conformance.engine.live import LiveProgress

    check_faults(options)
    if options.baseline:
        check_baseline(options.baseline, options.profile)
    run_dir = Path(options.run_dir) if options.run_dir else Path(options.reports) / new_run_id()
    collected = Collected()
    code = pytest.main(pytest_args(options, run_dir), plugins=[LiveProgress(), collected] if live else [collected])
    return run_dir, conclude(run_dir, code, collected, options.keyword)


# ---- every kind against its reference, one command (`run --all`) ---------------------------------------------

KINDS = SUT_KINDS  # every SUT kind ships a reference profile and a suite
KIND_NEEDS: dict[str, tuple[str, ...]] = {"emse": ("mbedtls",)}  # python-mbedtls: CPython 3.11 and 3.12 only


@dataclass
class KindRun:
    """One kind's run of `run --all`: its folder and outcome, or why it did not run."""

    kind: str
    run_dir: Path | None
    outcome: Outcome | None
    skipped: str = ""  # why the kind did not run (a module its reference needs, no case matching -k)

    @property
    def code(self) -> int:
        """The kind's run's exit code; a kind that did not run is not a pass (its shall cases did not run)."""
        return self.outcome.code if self.outcome is not None else EXIT_FAIL


def kind_unavailable(kind: str) -> str | None:
    """Why a kind's reference cannot run here, or None."""
    import importlib.util

    missing = [m for m in KIND_NEEDS.get(kind, ()) if importlib.util.find_spec(m) is None]
    return f"needs the module {missing[0]}, not installed" if missing else None


def execute_all(options: RunOptions) -> tuple[Path, list[KindRun]]:
    """Every kind's suite against its embedded reference, the kinds in parallel processes (one per core, at
    most one per kind), into one folder: <reports>/<run-id>/<kind>/, each a whole run folder, and runs.json
    naming each kind's decision. A kind whose reference cannot run here counts against pass."""
    import concurrent.futures
    import os

    from conformance.profile import shipped_profile

    if options.faults or options.baseline or options.workers or options.run_dir:
        raise RunError("--all runs the references as shipped: --fault, --baseline and -n apply to one kind's run")
    parent = Path(options.reports) / new_run_id()
    runs = {kind: KindRun(kind, None, None, why) for kind in KINDS if (why := kind_unavailable(kind))}
    todo = {
        kind: RunOptions(
            profile=str(shipped_profile(f"reference-{kind}.yaml")),
            embedded=True,
            keyword=options.keyword,
            reveal_secrets=options.reveal_secrets,
            stop_after=options.stop_after,
            run_dir=str(parent / kind),
        )
        for kind in KINDS
        if kind not in runs
    }
    with concurrent.futures.ProcessPoolExecutor(max_workers=max(1, min(len(todo), os.cpu_count() or 1))) as pool:
        futures = {kind: pool.submit(_execute_quietly, kind_options) for kind, kind_options in todo.items()}
        for kind, future in futures.items():
            run_dir, outcome, error = future.result()
            runs[kind] = KindRun(kind, run_dir, outcome, f"no case matches: {error}" if error else "")
    ordered = [runs[kind] for kind in KINDS]
    if all(r.outcome is None for r in ordered):  # the HSE always runs: -k matched no case of any kind
        with contextlib.suppress(OSError):  # the kinds' runs removed their empty folders
            parent.rmdir()
        raise RunError(f"no case of any kind matches -k {options.keyword!r}; `best-conformance list` shows the cases")
    parent.mkdir(parents=True, exist_ok=True)
    (parent / "runs.json").write_text(json.dumps(_runs_record(ordered), indent=2) + "\n", encoding="utf-8")
    return parent, ordered


def _execute_quietly(options: RunOptions) -> tuple[Path | None, Outcome | None, str]:
    """One kind's run in a worker process, without live progress; a RunError (-k matching none of its cases)
    comes back as text."""
    try:
        run_dir, outcome = execute(options, live=False)
    except RunError as exc:
        return None, None, str(exc)
    return run_dir, outcome, ""


def all_code(runs: list[KindRun]) -> int:
    """The exit code of `run --all`: a harness error anywhere, else a kind not passing, else pass."""
    codes = [r.code for r in runs]
    if EXIT_HARNESS in codes:
        return EXIT_HARNESS
    return EXIT_FAIL if any(c != EXIT_PASS for c in codes) else EXIT_PASS


def _runs_record(runs: list[KindRun]) -> dict[str, Any]:
    kinds = {}
    for r in runs:
        decision = _decision(r.run_dir) if r.run_dir is not None else None
        kinds[r.kind] = {
            "folder": r.kind if r.run_dir is not None else None,
            "decision": decision["outcome"] if decision else None,
            "reason": decision.get("reason") if decision else r.skipped,
            "exit_code": r.code,
        }
    return {"command": "best-conformance run --all", "exit_code": all_code(runs), "kinds": kinds}


def check_baseline(baseline: str, profile: str) -> None:
    """The baseline is readable and made for this profile's SUT, so that a mismatch stops the run before it starts."""
    from conformance.baseline import BaselineError, check_for_profile

    try:
        check_for_profile(baseline, profile)
    except BaselineError as exc:
        raise RunError(str(exc)) from None


def new_run_id() -> str:
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S")


def pytest_args(options: RunOptions, run_dir: Path) -> list[str]:
    args = [
        "-o",
        "addopts=",  # a run is not the harness's own test session: none of its pytest settings apply
        "-p",
        "no:cacheprovider",
        "-p",
        "no:terminal",
        "--best-profile",
        options.profile,
        "--best-reports",
        str(run_dir.parent),
        "--best-run-id",
        run_dir.name,
        "--junitxml",
        str(run_dir / "junit.xml"),
        "--alluredir",
        str(run_dir / "allure-results"),
        "-W",
        "ignore::pytest.PytestUnraisableExceptionWarning",
    ]
    args += ["--best-reference"] if options.embedded else []
    args += [a for fault in options.faults for a in ("--best-fault", fault)]
    args += ["-k", options.keyword] if options.keyword else []
    args += ["-n", str(options.workers)] if options.workers else []
    args += ["--best-reveal-secrets"] if options.reveal_secrets else []
    args += ["--best-stop-after", str(options.stop_after)] if options.stop_after is not None else []
    if options.baseline:
        args += ["--best-baseline", options.baseline] + (["--best-strict-baseline"] if options.strict_baseline else [])
    return args + [str(Path(f).resolve()) for f in options.case_files]  # explicit case paths replace the suite


class Collected:
    """A pytest plugin that remembers which cases were collected (under xdist, what the workers collected), so
    that the run can be checked for a result line per case."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.errors: list[str] = []  # what broke collection (a suite file, the profile), for the console

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            text = str(report.longrepr).strip().splitlines()
            self.errors.append(f"{report.nodeid or 'collection'}: {text[-1] if text else 'failed'}")

    def pytest_collection_finish(self, session: Any) -> None:
        self.ids |= {item.nodeid.rsplit("::", 1)[-1] for item in session.items}

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.ids |= {nodeid.rsplit("::", 1)[-1] for nodeid in ids}


@dataclass
class Outcome:
    """How a run ended, for the console and the exit code."""

    code: int
    lines: list[str]  # what the console says last: the decision with its reason, the counts, where things are
    results: list[dict[str, Any]]


def conclude(run_dir: Path, pytest_code: int, collected: Collected, keyword: str | None) -> Outcome:
    """The exit code of a finished pytest run and what to say about it. Raises RunError when nothing ran
    because -k matched no case (the empty run folder is removed)."""
    if pytest_code == pytest.ExitCode.NO_TESTS_COLLECTED:
        if run_dir.is_dir() and not (run_dir / "results.jsonl").exists():
            shutil.rmtree(run_dir)
        matching = f" matches -k {keyword!r}" if keyword else " was collected"
        raise RunError(f"no case{matching}; `best-conformance list` shows the cases")
    results_file = run_dir / "results.jsonl"
    if pytest_code in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR) or not results_file.exists():
        code = EXIT_USAGE if pytest_code == pytest.ExitCode.USAGE_ERROR else EXIT_HARNESS
        why = collected.errors or ["see the error above"]
        return Outcome(code, [f"the run could not start: {why[0]}", *why[1:3]], [])
    loaded = load_results(results_file)
    lines = [f"unreadable result: {line}" for line in loaded.unreadable]
    missing = sorted(collected.ids - {r["case"] for r in loaded.results})
    decision = _decision(run_dir)
    counts = Counter(r["verdict"] for r in loaded.results)
    count = len(loaded.results)
    tally = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    lines.append(f"{count} case{'' if count == 1 else 's'}: {tally}")
    if decision is None:
        lines.append(f"no compliance.json was written in {run_dir}: the run's record is incomplete")
        return Outcome(EXIT_HARNESS, lines, loaded.results)
    lines.append(f"decision: {decision['outcome'].upper()}: {decision.get('reason', '')}")
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        lines.append(f"{len(missing)} collected case(s) wrote no result: {shown}")
        return Outcome(EXIT_HARNESS, lines, loaded.results)
    if decision["errors"] or loaded.unreadable:
        return Outcome(EXIT_HARNESS, lines, loaded.results)
    return Outcome(EXIT_PASS if decision["outcome"] == "pass" else EXIT_FAIL, lines, loaded.results)


def _decision(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / "compliance.json").read_text(encoding="utf-8"))["decision"]
    except (OSError, ValueError, KeyError):
        return None


def fuzz_campaign(
    profile: LoadedProfile,
    run_dir: Path,
    interfaces: list[str],
    budget: Budget,
    *,
    embedded: bool,
    faults: frozenset[str] = frozenset(),
    profile_file: str | Path | None = None,
) -> list[FuzzReport]:
    """`best-conformance fuzz`: the campaign into run_dir, then compliance.json (decision: no finding) and
    report.html."""
    from conformance.embedded import restartable_reference
    from conformance.fuzz.campaign import Sut, fuzz_interfaces
    from conformance.report.compliance import write_compliance
    from conformance.report.html import write_report

    started = datetime.datetime.now(datetime.UTC)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.jsonl").touch()
    with contextlib.ExitStack() as stack:
        sut = stack.enter_context(restartable_reference(profile, faults)) if embedded else Sut(profile)
        reports = fuzz_interfaces(sut, interfaces, run_dir, budget)
    write_compliance(
        run_dir,
        profile,
        started=started,
        finished=datetime.datetime.now(datetime.UTC),
        reference=embedded,
        faults=faults,
        suite_files=sorted((run_dir / "findings").glob("*.yaml")),
        profile_file=profile_file,
        mode="fuzz",
    )
    write_report(run_dir)
    return reports
