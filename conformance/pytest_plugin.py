"""pytest plugin: `pytest --best-profile=FILE` runs the conformance suites as test items.

pytest is the runner (design.md 4): node ids end in the case ids, so `-k`, `--junitxml`, `--alluredir` and
`-n` work as usual. Every verdict also goes to reports/<run-id>/results.jsonl as the case ends.

Verdicts map onto pytest outcomes: pass -> passed; warn (a should/may case failed) -> passed with a warning;
not applicable (the PICS) -> skipped; everything else (fail, inconclusive, not run, error) -> failed, with the
reason in the failure text: a vendor's CI is never green while a case could not be judged.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import warnings
from pathlib import Path
from typing import Any

import pytest

from conformance.engine.model import Case, suite_dir
from conformance.engine.results import Result, ResultsFile, Verdict

RUN_ID_ENV = "BEST_CONFORMANCE_RUN_ID"
REPORTS_ENV = "BEST_CONFORMANCE_REPORTS"
HARNESS_CA = "harness-ca.pem"  # in a run folder: the CA of the push receiver's certificate, when the harness made it


class ConformanceWarning(UserWarning):
    """A should/may case failed: reported, not a non-conformance."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("best-conformance", "BEST conformance suites")
    group.addoption("--best-profile", metavar="FILE", help="SUT profile: run the conformance suites against it")
    group.addoption(
        "--best-reference",
        action="store_true",
        help="start the reference SUT the profile describes, embedded, and test it",
    )
    group.addoption(
        "--best-fault",
        action="append",
        default=[],
        metavar="NAME",
        help="with --best-reference: switch on a fault of the catalogue (repeatable)",
    )
    group.addoption("--best-reports", metavar="DIR", default="reports", help="where run folders go (reports/)")
    group.addoption("--best-run-id", metavar="ID", help="name of the run folder (default: a timestamp)")
    group.addoption(
        "--best-baseline",
        metavar="FILE",
        help="expected failures of this SUT (YAML, each with a reason): they xfail; the run folder gets baseline.json",
    )
    group.addoption(
        "--best-strict-baseline", action="store_true", help="with --best-baseline: a case that now passes fails"
    )
    group.addoption(
        "--best-stop-after",
        type=int,
        default=5,
        metavar="N",
        help="when N cases in a row got no answer at all from the SUT, mark the rest 'not run' instead of waiting "
        "for every reply timeout (default 5; 0: never stop)",
    )
    group.addoption(
        "--best-fuzz",
        choices=["emsdp", "key_server", "all"],
        metavar="INTERFACE",
        help="after the cases, fuzz the SUT's interface (emsdp, key_server or all) with best-conformance fuzz; the "
        "findings join the run folder (robustness in compliance.json and report.html)",
    )
    group.addoption("--best-fuzz-examples", type=int, metavar="N", help="with --best-fuzz: examples per interface")
    group.addoption("--best-fuzz-time", type=float, metavar="S", help="with --best-fuzz: or seconds per interface")
    group.addoption("--best-fuzz-seed", type=int, default=0, metavar="S", help="with --best-fuzz: the seed (0)")
    group.addoption(
        "--best-reveal-secrets",
        action="store_true",
        help="write K, OPc and derived keys in clear into the run's outputs (default: masked)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "conformance_case: a declarative BEST conformance case")
    path = config.getoption("--best-profile", None)
    if not path:
        return
    from conformance.profile import ProfileError, load_profile

    try:
        profile = load_profile(path)
    except ProfileError as exc:
        raise pytest.UsageError(str(exc)) from None
    if hasattr(config, "workerinput"):  # an xdist worker writes into its controller's run folder
        run_dir = Path(os.environ[REPORTS_ENV]) / os.environ[RUN_ID_ENV]
    else:  # the reports folder as given, relative to where pytest started: a change of directory moves nothing
        run_dir = config.invocation_params.dir / config.getoption("--best-reports")
        run_dir = run_dir / (config.getoption("--best-run-id") or _new_run_id())
        os.environ[REPORTS_ENV], os.environ[RUN_ID_ENV] = str(run_dir.parent), run_dir.name  # workers inherit
    state = RunState(profile, run_dir)
    if config.getoption("--best-baseline"):
        from conformance.baseline import BaselineError, load_for_suite

        try:
            state.baseline = load_for_suite(config.getoption("--best-baseline"), profile.sut.kind)
        except BaselineError as exc:
            raise pytest.UsageError(str(exc)) from None
    config.stash[STATE] = state
    explicit = [a for a in config.args if a.endswith((".yaml", ".yml")) or "::" in a]
    config.args[:] = explicit or [str(suite_dir(profile.sut.kind))]


def _new_run_id() -> str:
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S")


class RunState:
    """What a run shares: the profile (pointed at the embedded SUT once started) and where results go."""

    def __init__(self, profile: Any, run_dir: Path):
        self.profile = profile
        self.run_dir = run_dir
        self.results = ResultsFile(run_dir / "results.jsonl")
        self.certs: Any = None
        self.baseline: Any = None  # expected failures (conformance.baseline), with --best-baseline
        self.unanswered: list[str] = []  # reasons of the cases in a row that got no answer from the SUT
        self.stopped: str | None = None  # why the run stopped early: the remaining cases are not run
        self.fuzz_problem: str | None = None  # --best-fuzz could not start (the SUT did not serve)
        self._stack = contextlib.ExitStack()
        self.started = datetime.datetime.now(datetime.UTC)

    def start_reference(self, faults: list[str]) -> None:
        from conformance.embedded import embedded_reference
        from conformance.faults import parse_faults

        self.profile, self.certs = self._stack.enter_context(embedded_reference(self.profile, parse_faults(faults)))

    def start_peers(self) -> None:
        """What the harness runs beside a vendor's SUT for the whole run (the EMKS an EMSE registers with, the HSE a UE
        is configured with)."""
        from conformance.engine.peers import harness_peers

        self.profile.peers = self._stack.enter_context(harness_peers(self.profile))
        if (
            self.profile.sut.kind in ("hse", "emks")
            and self.profile.pics.subscription
            and self.profile.tls.receiver is None
        ):
            import shutil

            from conformance.keyserver.certs import harness_certificates

            self.run_dir.mkdir(parents=True, exist_ok=True)  # the CA the SUT must trust to push keys to the harness
            shutil.copyfile(harness_certificates().ca, self.run_dir / HARNESS_CA)

    def close(self) -> None:
        self._stack.close()

    def count(self, result: Result, limit: int) -> None:
        """Keep the streak of cases the SUT did not answer; at `limit` in a row, the run stops (a dead SUT
        would otherwise cost every case its reply timeouts)."""
        self.unanswered = [*self.unanswered, result.reason] if result.unanswered else []
        if limit and len(self.unanswered) >= limit and self.stopped is None:
            self.stopped = f"the run stopped after {limit} cases in a row got no answer from the SUT ({result.reason})"


STATE = pytest.StashKey[RunState]()


def pytest_sessionstart(session: pytest.Session) -> None:
    state = session.config.stash.get(STATE, None)
    if state is not None and session.config.getoption("--best-reference"):
        state.start_reference(session.config.getoption("--best-fault"))
    elif state is not None:
        state.start_peers()


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(STATE, None)
    if state is None:
        return
    controller = not hasattr(session.config, "workerinput")
    if controller and session.config.getoption("--best-fuzz"):
        _fuzz(session.config, state)  # while the SUT the cases ran against still runs
    state.close()
    if controller:  # the controller (or a plain run) writes the reports
        if state.baseline is not None:
            from conformance.baseline import finish_run

            options = session.config.getoption
            finish_run(state.run_dir, state.baseline, options("--best-baseline"), options("--best-strict-baseline"))
        _write_compliance(session.config, state)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is not None and not hasattr(config, "workerinput"):
        compliance = state.run_dir / "compliance.json"
        terminalreporter.section("best-conformance")
        if compliance.exists():
            doc = json.loads(compliance.read_text(encoding="utf-8"))
            found = doc["decision"]
            terminalreporter.write_line(f"decision: {found['outcome'].upper()}: {found.get('reason', '')}")
            for entry in doc.get("robustness") or []:
                terminalreporter.write_line(
                    f"robustness ({entry['requirement']}): {entry['interface']} {entry['verdict']}: "
                    f"{len(entry['findings'])} finding(s) in {entry['examples']} examples, seed {entry['seed']}"
                )
        if state.fuzz_problem:
            terminalreporter.write_line(state.fuzz_problem)
        terminalreporter.write_line(f"run folder: {state.run_dir}")
    if state is not None and state.baseline is not None and (state.run_dir / "baseline.json").exists():
        from conformance.baseline import summary_lines

        terminalreporter.section("baseline")
        for line in summary_lines(json.loads((state.run_dir / "baseline.json").read_text(encoding="utf-8"))):
            terminalreporter.write_line(line)


def _fuzz(config: pytest.Config, state: RunState) -> None:
    """--best-fuzz: the fuzz campaign against the run's SUT, into the run folder (conformance/fuzz/campaign.py).
    An embedded reference is not restarted after a crash here: such a finding is reported as found, unshrunk."""
    from conformance.fuzz.campaign import INTERFACES, Budget, Sut, fuzz_interfaces
    from conformance.fuzz.findings import FuzzSetupError

    option = config.getoption
    chosen = option("--best-fuzz")
    interfaces = list(INTERFACES) if chosen == "all" else [chosen]
    budget = Budget(option("--best-fuzz-examples"), option("--best-fuzz-time"), option("--best-fuzz-seed"))
    state.run_dir.mkdir(parents=True, exist_ok=True)
    sut = Sut(state.profile, certs=state.certs, reference=bool(option("--best-reference")))
    try:
        fuzz_interfaces(sut, interfaces, state.run_dir, budget)
    except FuzzSetupError as exc:
        state.fuzz_problem = f"fuzzing not started: {exc}"


def _write_compliance(config: pytest.Config, state: RunState) -> None:
    """compliance.json (+ traces/), then report.html rendered from it."""
    from conformance.report.compliance import write_compliance

    written = write_compliance(
        state.run_dir,
        state.profile,
        started=state.started,
        finished=datetime.datetime.now(datetime.UTC),
        reference=bool(config.getoption("--best-reference")),
        faults=config.getoption("--best-fault"),
        reveal_secrets=bool(config.getoption("--best-reveal-secrets")),
        suite_files=config.args,
        profile_file=config.getoption("--best-profile"),
    )
    if written is None:
        return
    from conformance.report.html import write_report  # from compliance.json + traces/ only

    write_report(state.run_dir)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if STATE in parent.config.stash and file_path.suffix in (".yaml", ".yml"):
        return CaseFile.from_parent(parent, path=file_path)
    return None


class CaseFile(pytest.File):
    def collect(self) -> Any:
        from conformance.engine.lint import load_suite

        cases, report = load_suite([self.path])
        if report.errors:
            raise pytest.UsageError("suite lint errors:\n" + "\n".join(report.errors))
        for case in cases:
            yield CaseItem.from_parent(self, name=case.id, case=case)


class CaseFailed(Exception):
    def __init__(self, result: Result):
        super().__init__(result.reason)
        self.result = result


class CaseItem(pytest.Item):
    def __init__(self, *, case: Case, **kwargs: Any):
        super().__init__(**kwargs)
        self.case = case
        self.add_marker(pytest.mark.conformance_case)

    def runtest(self) -> None:
        from conformance.engine.runner import case_result, run_case

        state = self.config.stash[STATE]
        try:
            if state.stopped:
                result = case_result(self.case, Verdict.NOT_RUN, state.stopped)
            else:
                result = run_case(self.case, state.profile, state.run_dir, certs=state.certs)
            if not self.config.getoption("--best-reveal-secrets"):  # before results.jsonl, junit.xml, allure see it
                from conformance.masking import mask_result

                result = mask_result(result)
        except Exception as exc:  # the harness broke around the case: still a result line, verdict error
            from conformance.engine.runner import error_result

            result = error_result(self.case, exc)
        state.results.append(result)
        state.count(result, self.config.getoption("--best-stop-after"))
        self.user_properties.append(("verdict", result.verdict.value))
        if result.unanswered or result.verdict is Verdict.NOT_RUN:
            self.user_properties.append(("reason", result.reason))
        _attach_to_allure(self.case, result)
        if state.baseline is not None:
            from conformance.baseline import apply_to_item

            apply_to_item(state.baseline, result, self.config.getoption("--best-strict-baseline"))
        if result.verdict is Verdict.PASS:
            return
        if result.verdict is Verdict.WARN:
            warnings.warn(ConformanceWarning(f"{self.case.id} ({self.case.level}): {result.reason}"), stacklevel=1)
            return
        if result.verdict is Verdict.NOT_APPLICABLE:
            pytest.skip(f"{result.verdict.value}: {result.reason}")
        raise CaseFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CaseFailed):
            r = excinfo.value.result
            lines = [
                f"{r.verdict.value.upper()}: {self.case.id} {self.case.title}",
                f"  refs: {', '.join(r.refs)}",
                f"  at {self.case.path}:{r.failed_step or self.case.line}",
                f"  {r.reason}",
            ]
            if r.expected is not None or r.observed is not None:
                lines += [f"  expected: {r.expected!r}", f"  observed: {_short(r.observed)}"]
            if r.binding_dependent:
                lines.append("  rests on assumed binding values: " + ", ".join(d["key"] for d in r.binding_dependent))
            lines.append(f"  evidence: {r.pcap}")
            return "\n".join(lines)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.case.line - 1, f"{self.case.id}: {self.case.title}"


def _short(value: Any, limit: int = 600) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + " ..."


def _attach_to_allure(case: Case, result: Result) -> None:
    """With allure-pytest active (--alluredir), attach the pcap and the decoded trace, and label the case."""
    try:
        import allure
        from allure_commons import plugin_manager
    except ImportError:
        return
    if not plugin_manager.get_plugins():
        return
    allure.dynamic.title(f"{case.id}: {case.title}")
    allure.dynamic.label("level", case.level)
    for ref in case.refs:
        allure.dynamic.label("ref", ref)
    allure.attach(
        json.dumps(result.trace, indent=2, default=str),
        name="decoded exchange",
        attachment_type=allure.attachment_type.JSON,
    )
    if result.pcap and Path(result.pcap).exists():
        allure.attach.file(result.pcap, name=f"{case.id}.pcap", extension="pcap")
