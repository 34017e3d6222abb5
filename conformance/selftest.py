"""Proving the suites on the reference SUTs (design.md 7, 7a): `best-conformance selftest`.

For each kind of reference SUT that ships a profile and a suite, run the suite against the conformant reference
(every case must pass or be not applicable), then once per catalogued fault of that kind's components. A fault
is *caught* when a case that passed on the conformant reference gets the verdict fail (a failed `shall` case):
a fault that only makes `should`/`may` cases warn, or cases inconclusive, would leave a certification decision
at pass, so it is a hole, unless the catalogue says a warning suffices (faults.yaml `warn_suffices`: the fault
breaks only a should/may requirement). Besides, the catalogue names per fault and kind the cases that must give
their failing verdict (faults.yaml `caught_by`: fail for `shall`, warn for `should`/`may`); the suite tests share
them (EXPECTED_CATCHERS) and the run-a-suite-against-a-reference logic below.

A dead fault (faults.Fault.dead: the SUT hangs, exits or stops answering) is judged by what a lab would sign:
the run's decision (report.compliance.decision) must be fail, and no negative case that touches a dead
interface may pass when the SUT died before it ended; each such pass is a false pass, reported by case.

Every run is made on two paths (`--path`): *embedded*, the reference in the selftest's own process (the
harness shares its certificates), and *external*, the path labs use: the reference as its own process
(`best-conformance serve`, see reference/process.py), reached only through the profile a lab would write
(endpoints, TLS files, shell triggers), with the harness's peers started as `run` starts them. On the external
path the conformant run of the whole suite is the real command, `best-conformance run --profile lab.yaml`,
which must exit 0; fault runs and case slices run the cases in-process against the external SUT.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import fnmatch
import json
import logging
import multiprocessing
import shlex
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from conformance import forked_serve
from conformance.embedded import embedded_reference
from conformance.engine.lint import load_suite
from conformance.engine.model import Case, suite_dir
from conformance.engine.peers import harness_peers
from conformance.engine.results import Result, ResultsFile, Verdict
from conformance.engine.runner import case_result, run_case
from conformance.faults import BY_NAME, CATALOGUE, CatalogueError, parse_faults
from conformance.keyserver.certs import CertificateDirectory
from conformance.masking import mask_result
from conformance.profile import LoadedProfile, load_profile, shipped_profile
from conformance.reference.death import DEATH_LOGGER
from conformance.reference.process import ServedReference, cli_command, free_port
from conformance.report.compliance import decision
from conformance.run import kind_unavailable

# Which catalogue components each reference SUT kind implements, so which faults it can be run with.
KIND_COMPONENTS: dict[str, tuple[str, ...]] = {
    "hse": ("hse", "keyserver"),  # the reference HSE: EMSDP over UDP plus its EAS-facing key server
    "emks": ("keyserver",),  # the reference EMKS is a key server only
    "emse": ("emse",),  # the reference EMSE/EAS
    "ue": ("ue",),  # the reference UE
}


# The catalogue's expected catchers and warn-suffices (faults.yaml: caught_by, warn_suffices), as the tables the
# suite tests and selftest.json use: kind -> fault -> the cases that must give their failing verdict with it on (the
# cheapest reliable catchers); fault -> the should/may requirement it breaks, for which a warning is the right
# verdict, so a `should`/`may` case that warns catches it (every other fault needs a fail).
def _expected_catchers() -> dict[str, dict[str, list[str]]]:
    for fault in CATALOGUE:  # a kind runs only its components' faults: its catchers of another would never run
        for kind in fault.caught_by:
            if fault.component not in KIND_COMPONENTS.get(kind, ()):
                kinds = [k for k, components in KIND_COMPONENTS.items() if fault.component in components]
                raise CatalogueError(
                    f"faults.yaml: fault {fault.name}: caught_by names the kind {kind}, which does not run "
                    f"{fault.component} faults; kinds that do: {', '.join(kinds)}"
                )
    return {
        kind: {f.name: list(f.caught_by[kind]) for f in CATALOGUE if kind in f.caught_by} for kind in KIND_COMPONENTS
    }


EXPECTED_CATCHERS: dict[str, dict[str, list[str]]] = _expected_catchers()
WARN_SUFFICES: dict[str, str] = {f.name: f.warn_suffices for f in CATALOGUE if f.warn_suffices}

CONFORMANT = "conformant"  # the name of the fault-free run in reports


class SelftestError(ValueError):
    """Bad input to the selftest (kind, fault or case pattern): one line naming it and the fix."""


# ---- running a suite against a reference (shared with the suite tests) ------------------------------------


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


def missed_catchers(cases: dict[str, Case], results: dict[str, Result], expected: Iterable[str]) -> list[str]:
    """The expected catchers that did not give their failing verdict, each explained."""
    return [
        explain(results[i]) for i in expected if i in results and results[i].verdict is not failing_verdict(cases[i])
    ]


# ---- what can be selftested ------------------------------------------------------------------------------


def unavailable(kind: str) -> str | None:
    """Why the selftest cannot run this kind here, or None. A kind joins once its profile and suite ship."""
    if kind not in KIND_COMPONENTS:
        return "unknown SUT kind"
    if not shipped_profile(f"reference-{kind}.yaml").is_file() or not any(suite_dir(kind).glob("*.yaml")):
        return "no shipped reference profile and suite yet"
    why = kind_unavailable(kind)
    return f"its reference {why}" if why else None


def available_kinds() -> list[str]:
    return [kind for kind in KIND_COMPONENTS if unavailable(kind) is None]


def kind_faults(kind: str) -> list[str]:
    """The catalogue's faults a reference SUT of this kind can be run with, in catalogue order: not those only
    fuzzing finds (faults.yaml found_by; `best-conformance fuzz` and tests/fuzz prove those)."""
    return [f.name for f in CATALOGUE if f.component in KIND_COMPONENTS[kind] and not f.found_by]


def load_cases(kind: str, patterns: Iterable[str] = ()) -> list[Case]:
    """The kind's suite (lint-clean), restricted to case ids matching any of the glob patterns if given."""
    cases, lint = load_suite(suite_dir(kind).glob("*.yaml"))
    if lint.errors:
        raise SelftestError(f"the {kind} suite has lint errors: {lint.errors[0]}")
    patterns = list(patterns)
    return [c for c in cases if not patterns or any(fnmatch.fnmatchcase(c.id, p) for p in patterns)]


@dataclass(frozen=True)
class Plan:
    """What to run: per kind, the selected cases and the faults (besides the conformant run)."""

    faults: dict[str, list[str]]
    cases: dict[str, list[Case]]
    patterns: tuple[str, ...] = ()  # --case globs: a slice of the suites (no `run` of a whole suite then)


def plan(kinds: Iterable[str] = (), faults: Iterable[str] = (), patterns: Iterable[str] = ()) -> Plan:
    """Check the selection and say what runs; bad input raises SelftestError naming it."""
    available = available_kinds()
    kinds, patterns = list(dict.fromkeys(kinds)), list(patterns)
    for kind in kinds:
        if kind not in available:
            raise SelftestError(f"--kind {kind}: {unavailable(kind)}; selftest can run: {', '.join(available)}")
    try:
        chosen = parse_faults(faults)
    except ValueError as exc:
        raise SelftestError(f"--fault: {exc}") from None
    if chosen and not kinds:  # the kinds that can run the chosen faults
        kinds = [k for k in available if any(BY_NAME[f].component in KIND_COMPONENTS[k] for f in chosen)]
    kinds = kinds or available
    by_kind = {k: [f for f in kind_faults(k) if not chosen or f in chosen] for k in kinds}
    orphans = sorted(chosen - {f for fs in by_kind.values() for f in fs})
    elsewhere = [BY_NAME[f] for f in orphans if BY_NAME[f].found_by]
    if elsewhere:
        fault = elsewhere[0]
        how = "a load run" if fault.finder == "best-conformance load" else "fuzzing"
        profile = {"keyserver": "reference-emks.yaml"}.get(fault.component, "reference-hse.yaml")
        extra = " -k 2" if how == "a load run" else ""
        raise SelftestError(
            f"--fault {fault.name}: only {how} finds it (faults.yaml found_by); try "
            f"`{fault.finder} --profile profiles/{profile} --reference --fault {fault.name}{extra}`"
        )
    if orphans:
        component = BY_NAME[orphans[0]].component
        raise SelftestError(f"--fault {orphans[0]}: no selected --kind runs {component} faults; drop --kind")
    cases = {k: load_cases(k, patterns) for k in kinds}
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(c.id, pattern) for cs in cases.values() for c in cs):
            raise SelftestError(f"--case {pattern}: matches no case of {', '.join(kinds)}; see `best-conformance list`")
    return Plan(by_kind, cases, tuple(patterns))


# ---- one run: a kind's selected cases against its reference, conformant or with one fault -----------------

# faults whose runs mostly wait for reply timeouts (every request, or everything after a death, unanswered):
# their slices start first, so that the quick runs fill the workers around them
SLOW = frozenset(
    {
        "no_reply",
        "wrong_fc",
        "wrong_truncation",
        "hse_hangs_after_setup",
        "emse_never_answers",
        "emse_never_deregisters",
    }
)
CHUNK = 24  # cases per embedded task: each task starts a fresh reference (~0.2 s) and runs them in suite order
# cases per external task at most: a served reference costs a process start (~1.5 s of CPU) and its certificates,
# so the external path cuts each run into fewer slices of equal size (the HSE suite: two)
EXTERNAL_CHUNK = 50
PATHS = ("embedded", "external")
# slices a worker of `selftest -j N` runs at once, each in a process of its own: a slice keeps a CPU busy about a
# third of its time, the rest it waits for its reference (silence windows, reply timeouts, a served reference).
# Measured with -j 2 on 2 cores: 5 -> 129 s, 7 -> 116 s, 9 -> 116 s (the CPU is then the bound)
SLICES_PER_WORKER = 7
LAB_RUN_TIMEOUT = 900.0  # s for `best-conformance run` of one kind's whole suite against the served reference


@dataclass
class Run:
    kind: str
    fault: str | None
    seconds: float
    results: dict[str, Result]  # case id -> its result
    crashed: str = ""  # the run itself failed (the reference would not start, ...)
    path: str = "embedded"
    deaths: dict[str, float] = field(default_factory=dict)  # case id -> when the SUT it ran against died
    exits: list[int | None] = field(default_factory=list)  # external: how each served reference ended
    lab: dict[str, Any] | None = None  # external conformant: the `run` command, its exit code and decision

    def verdict(self, case_id: str) -> Verdict:
        return self.results[case_id].verdict


@dataclass(frozen=True)
class Task:
    kind: str
    fault: str | None
    cases: list[Case]
    out: Path  # pcaps of this kind, fault and path go to out/pcaps/
    certs: Path  # embedded: one CA for the whole selftest, issued once, shared by every run
    path: str = "embedded"
    lab_run: bool = False  # external: the whole suite through `best-conformance run --profile lab.yaml`


def run_task(task: Task) -> Run:
    """Run the task's cases against a fresh reference of its kind; keep the pcaps of cases that did not pass."""
    start = time.monotonic()
    runner = _run_lab_command if task.lab_run else _run_external if task.path == "external" else _run_embedded
    try:
        run = runner(task)
    except Exception as exc:  # reported as a crashed run, with its reason
        run = Run(task.kind, task.fault, 0.0, {}, crashed=f"{type(exc).__name__}: {exc}", path=task.path)
    run.seconds = time.monotonic() - start
    for result in run.results.values() if not task.lab_run else ():  # a run folder stays as `run` wrote it
        if result.verdict in (Verdict.PASS, Verdict.NOT_APPLICABLE) and result.pcap:
            Path(result.pcap).unlink(missing_ok=True)  # evidence is kept where something was found
    return run


# The time the reference has to answer in the selftest's profiles (pixit.reply_timeout; the shipped profiles leave
# the default, 2 s): it answers on the same host within milliseconds, and runs of faults that leave requests
# unanswered mostly wait for this
REPLY_TIMEOUT = 1.0
# What the selftest's lab profile says of the served reference's timing: it answers on this host, so its waits are
# derived from its measured round trips (roles/timing.py), as an embedded reference's are
LAB_PIXIT = {"reply_timeout": REPLY_TIMEOUT, "timing": "measured"}
STOP_AFTER = 5  # as `run --stop-after`: cases in a row without any answer from the SUT before a slice stops


def run_slice(task: Task, run_one: Any) -> list[Result]:
    """The task's cases in order, `run_one(case)` each. As `run` does for a lab, once STOP_AFTER cases in a row
    got no answer at all from the SUT (a dead SUT, or one that ignores every request) the slice stops waiting
    for every reply timeout: the remaining cases are not run, except those that can still tell something: the
    fault's expected catchers and, when the fault kills the SUT, the negative cases (a dead SUT must not pass
    them: the false-pass check needs every one of them)."""
    keep = set(BY_NAME[task.fault].caught_by.get(task.kind, ())) if task.fault else set()
    dead = bool(task.fault and BY_NAME[task.fault].dead)
    results: list[Result] = []
    streak, stopped = 0, ""
    for case in task.cases:
        if stopped and case.id not in keep and not (dead and case.negative):
            results.append(case_result(case, Verdict.NOT_RUN, stopped))
            continue
        result = run_one(case)
        results.append(result)
        streak = streak + 1 if getattr(result, "unanswered", False) else 0
        if streak >= STOP_AFTER and not stopped:
            stopped = (
                f"the run stopped after {STOP_AFTER} cases in a row got no answer from the SUT "
                f"({result.case}: {result.reason})"
            )
    return results


def _finished(task: Task, results: list[Result], died: float | None, **extra: Any) -> Run:
    masked = [mask_result(r) for r in results]  # keys stay out of the evidence, as in a run's
    deaths = {r.case: died for r in masked} if died is not None else {}
    return Run(task.kind, task.fault, 0.0, {r.case: r for r in masked}, path=task.path, deaths=deaths, **extra)


def _quiet_deaths() -> None:
    """A worker's: the deaths dead faults log kept off the console (see _deaths_quiet)."""
    logging.getLogger(DEATH_LOGGER).propagate = False


@contextlib.contextmanager
def _deaths_quiet() -> Iterator[None]:
    """The deaths dead faults log in this process (embedded references) kept off the console: each run reads
    when its reference died from the reference itself (LoadedProfile.died_at)."""
    logger = logging.getLogger(DEATH_LOGGER)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield
    finally:
        logger.propagate = propagate


def selftest_profile(kind: str) -> LoadedProfile:
    """The kind's shipped reference profile, with the selftest's timing (LAB_PIXIT)."""
    data = yaml.safe_load(shipped_profile(f"reference-{kind}.yaml").read_text(encoding="utf-8"))
    data["pixit"] = {**data["pixit"], **LAB_PIXIT}
    return load_profile(data)


def _run_embedded(task: Task) -> Run:
    profile = selftest_profile(task.kind)
    faults = frozenset({task.fault} - {None})
    certs = CertificateDirectory(task.certs)
    with embedded_reference(profile, faults, certs=certs) as (running, shared):
        results = run_slice(task, lambda case: run_case(case, running, task.out, certs=shared))
        died = running.died_at()
    return _finished(task, results, died)


@contextlib.contextmanager
def external_reference(kind: str, fault: str | None, folder: Path) -> Iterator[tuple[LoadedProfile, ServedReference]]:
    """The reference as its own process (`serve`), and the lab's profile for it, loaded as `run` loads it, with
    the peers a run starts beside the SUT (`harness_peers`; for an EMSE, the EMKS it registers with, up first).
    No `certs=` shortcut: the harness knows only what the profile says."""
    shipped, faults = shipped_profile(f"reference-{kind}.yaml"), (fault,) if fault else ()
    served = ServedReference(kind, folder, shipped, faults, launch=forked_serve.launch)  # warm: see forked_serve
    with contextlib.ExitStack() as stack:
        stack.callback(served.stop)
        if kind == "emse":  # the EMKS listens first, with the lab's tls files; then the EMSE starts and registers
            first = load_profile(served.write_profile(served.profile_data(pixit=LAB_PIXIT)))
            peers = stack.enter_context(harness_peers(first))
            assert peers.emks is not None
            served.start(key_server=peers.emks.url)
            stack.callback(served.stop)  # before the EMKS: else its graceful stop waits on the EMSE's connections
            profile = load_profile(
                served.write_profile(served.profile_data(key_server=peers.emks.url, pixit=LAB_PIXIT))
            )
        else:
            served.start()
            profile = load_profile(served.write_profile(served.profile_data(pixit=LAB_PIXIT)))
            peers = stack.enter_context(harness_peers(profile))
        profile.peers = peers
        yield profile, served


def _run_external(task: Task) -> Run:
    with tempfile.TemporaryDirectory(prefix=f"best-selftest-{task.kind}-") as folder:
        with external_reference(task.kind, task.fault, Path(folder)) as (profile, served):
            results = run_slice(task, lambda case: run_case(case, profile, task.out))
        run = _finished(task, results, served.died_at, exits=[served.returncode])
        if run.deaths or any(r.verdict in (Verdict.ERROR, Verdict.INCONCLUSIVE) for r in results):
            _keep_log(served, task.out, task.cases[0].id)
    return run


def _keep_log(served: ServedReference, out: Path, first: str) -> None:
    """The served reference's log beside the slice's evidence: serve-<first case of the slice>.log."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(served.log, out / f"serve-{first}.log")


def _run_lab_command(task: Task) -> Run:
    """The conformant reference served, a profile written as a lab writes it, and the real command
    `best-conformance run --profile lab.yaml` (no --reference): its results, exit code and decision."""
    reports = task.out / "run"
    with tempfile.TemporaryDirectory(prefix=f"best-selftest-{task.kind}-") as folder:
        served = ServedReference(task.kind, Path(folder), shipped_profile(f"reference-{task.kind}.yaml"))
        with served:
            # an EMSE starts before the run's EMKS listens: its first registration fails, and the first case's
            # register trigger (kill -USR1) makes it register with the EMKS the run started
            key_server = f"https://127.0.0.1:{free_port()}" if task.kind == "emse" else None
            served.start(key_server=key_server)
            lab = served.write_profile(served.profile_data(key_server=key_server, pixit=LAB_PIXIT))
            command = cli_command("run", "--profile", str(lab), "--reports", str(reports))
            done = subprocess.run(command, capture_output=True, text=True, timeout=LAB_RUN_TIMEOUT)
        task.out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lab, task.out / "lab.yaml")
        (task.out / "run.log").write_text(f"$ {shlex.join(command)}\n{done.stdout}{done.stderr}", encoding="utf-8")
        _keep_log(served, task.out, "run")
    folders = sorted(d for d in reports.iterdir() if (d / "results.jsonl").is_file()) if reports.is_dir() else []
    if not folders:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise RuntimeError(f"`run` wrote no results (exit {done.returncode}): {tail}")
    results = [_result(r) for r in _read_jsonl(folders[-1] / "results.jsonl")]
    try:
        outcome = json.loads((folders[-1] / "compliance.json").read_text(encoding="utf-8"))["decision"]["outcome"]
    except (OSError, ValueError, KeyError):
        outcome = None
    lab_run = {
        "command": f"best-conformance run --profile lab.yaml --reports {reports}",  # lab.yaml: kept beside it
        "exit_code": done.returncode,
        "decision": outcome,
        "folder": str(folders[-1]),
    }
    return _finished(task, results, None, lab=lab_run, exits=[served.returncode])


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


RESULT_FIELDS = {f.name for f in fields(Result)}


def _result(data: dict[str, Any]) -> Result:
    """A result line of results.jsonl as a Result (fields this version does not know are left out)."""
    known = {k: v for k, v in data.items() if k in RESULT_FIELDS}
    return Result(**{**known, "verdict": Verdict(data["verdict"])})


def _tasks(the_plan: Plan, out: Path, certs: Path, paths: Iterable[str] = ("embedded",)) -> list[Task]:
    """The conformant runs first, then each fault's, each cut into slices of CHUNK cases in suite order, on each
    path. On the external path, the conformant run of a whole suite is one `run` command instead.

    The slicing (`slices`) does not depend on the number of workers: a reference keeps state from case to case (keys it
    provisioned, SQNs), so the same slices give the same matrix with any -j, while a slow fault (every reply
    timing out) is still spread over several workers."""
    tasks = []
    for path in paths:
        runs = [(k, None) for k in the_plan.faults] + [(k, f) for k, fs in the_plan.faults.items() for f in fs]
        for kind, fault in runs:
            cases = the_plan.cases[kind]
            folder = out / kind / (fault or CONFORMANT) / path
            if path == "external" and fault is None and not the_plan.patterns:
                tasks.append(Task(kind, None, cases, folder, certs, path, lab_run=True))
                continue
            tasks += [Task(kind, fault, part, folder, certs, path) for part in slices(cases, path)]
    return sorted(tasks, key=lambda t: (not t.lab_run, t.fault not in SLOW))  # the longest tasks start first


def slices(cases: list[Case], path: str) -> list[list[Case]]:
    """A run's cases cut into tasks, in suite order: embedded, CHUNK each; external, as few equal slices as keep
    each within EXTERNAL_CHUNK."""
    if path != "external":
        return [cases[n : n + CHUNK] for n in range(0, len(cases), CHUNK)]
    count = max(1, -(-len(cases) // EXTERNAL_CHUNK))
    size = -(-len(cases) // count)
    return [cases[n : n + size] for n in range(0, len(cases), size)]


def _merge(runs: list[Run]) -> Run:
    """One kind, fault and path's run from its chunks, in suite order."""
    first = runs[0]
    results = {i: r for run in runs for i, r in run.results.items()}
    crashed = "; ".join(run.crashed for run in runs if run.crashed)
    deaths = {i: t for run in runs for i, t in run.deaths.items()}
    exits = [e for run in runs for e in run.exits]
    lab = next((run.lab for run in runs if run.lab is not None), None)
    seconds = sum(run.seconds for run in runs)
    return Run(first.kind, first.fault, seconds, results, crashed, first.path, deaths, exits, lab)


# ---- judging ---------------------------------------------------------------------------------------------

NOT_JUDGED = (Verdict.NOT_APPLICABLE, Verdict.SKIPPED)
UDP_FREE_VERBS = {"key_client", "dtls", "emks", "trigger", "wait"}  # steps that do not talk EMSDP to an HSE


def case_interfaces(case: Case) -> set[str]:
    """The SUT interfaces a case talks to (faults.INTERFACES): an HSE's EMSDP over UDP, a key server (HSE or
    EMKS), an EMSE's DTLS endpoint. What the harness's own EMKS sees of an EMSE is not an interface of it."""
    verbs = {step.verb for step in case.steps}
    found = set()
    if "key_client" in verbs or (case.sut == "emks" and "trigger" in verbs):
        found.add("key_server")
    if "dtls" in verbs:
        found.add("dtls")
    if case.sut == "hse" and verbs - UDP_FREE_VERBS:
        found.add("emsdp")
    return found


def after_death(run: Run, cases: dict[str, Case], dead: Iterable[str]) -> list[str]:
    """The negative cases that started after the SUT they ran against died, on an interface they use: none of
    them may pass."""
    return [
        case_id
        for case_id, result in run.results.items()
        if case_id in cases
        and cases[case_id].negative
        and run.deaths.get(case_id, float("inf")) < result.started
        and case_interfaces(cases[case_id]) & set(dead)
    ]


def false_passes(run: Run, cases: dict[str, Case], dead: Iterable[str]) -> list[str]:
    """Negative cases that passed though they started after the SUT they ran against died (on an interface they
    use): silence or a refusal from a dead SUT proves nothing, so each is a false pass. (A case in which the
    SUT dies may pass: its own steps, the proof of life included, can all come before the death.)"""
    found = []
    for case_id in after_death(run, cases, dead):
        result, died = run.results[case_id], run.deaths[case_id]
        if result.verdict is Verdict.PASS:
            found.append(
                f"{case_id} passed, but it started {result.started - died:.2f} s after the SUT died ({_clock(died)})"
            )
    return found


def _clock(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%H:%M:%S.%f")[:-3] + " UTC"


@dataclass
class Finding:
    """What one fault did to its kind's suite, on one path."""

    kind: str
    fault: str
    component: str
    layer: str
    description: str
    seconds: float
    catching: list[str]  # cases that passed conformant and failed with the fault
    warning: list[str]  # should/may cases that passed conformant and warned with the fault
    counts: dict[str, int]
    expected: list[str]  # expected catchers among the selected cases
    missed: list[str]  # expected catchers that did not give their failing verdict, explained
    errors: list[str]  # cases with the verdict error, explained
    crashed: str = ""
    path: str = "embedded"
    dead: list[str] = field(default_factory=list)  # the interfaces a dead fault kills; empty: not a dead fault
    decision: str | None = None  # the decision (report.compliance.decision) over the run's results
    false_passes: list[str] = field(default_factory=list)  # dead: negative cases that passed after the death
    checked: list[str] = field(default_factory=list)  # dead: the negative cases that ran after the death
    died: str = ""  # dead: in how many of the run's slices the SUT died

    @property
    def caught(self) -> bool:
        if self.dead:
            return not self.crashed and self.decision == "fail" and not self.false_passes
        return bool(self.catching) or (bool(BY_NAME[self.fault].warn_suffices) and bool(self.warning))

    @property
    def detected(self) -> str:
        """fail (a shall case fails), warn (only should/may cases, enough for this fault), decision (a dead
        fault: the decision is fail, through cases that could not be judged), false pass, crashed or hole."""
        if self.crashed:
            return "crashed"
        if self.dead and self.false_passes:
            return "false pass"
        if self.dead and self.caught:
            return "fail" if self.catching else "decision"
        return "fail" if self.catching else "warn" if self.caught else "hole"

    @property
    def problems(self) -> list[str]:
        found = [f"crashed: {self.crashed}"] if self.crashed else []
        if not self.crashed and self.dead:
            found += [f"false pass: {p}" for p in self.false_passes]
            if self.decision != "fail":
                found.append(f"hole: the decision is {self.decision} against a dead SUT ({self.died})")
        elif not self.crashed and not self.caught:
            only = f" (only warnings: {', '.join(self.warning)}; a warning suffices only for WARN_SUFFICES)"
            found.append(f"hole: no case fails{only if self.warning else ''}")
        found += [f"expected catcher missed: {m}" for m in self.missed]
        found += [f"harness error: {e}" for e in self.errors]
        return found


@dataclass
class Report:
    started: str
    seconds: float
    workers: int
    out: str
    paths: list[str] = field(default_factory=lambda: ["embedded"])
    conformant: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # kind -> path -> summary
    findings: list[Finding] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        found = [
            f"{kind} conformant ({path}): {p}"
            for kind, by_path in self.conformant.items()
            for path, summary in by_path.items()
            for p in summary["problems"]
        ]
        return found + [f"{f.kind}/{f.fault} ({f.path}): {p}" for f in self.findings for p in f.problems]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": "a fault is caught when a case that passed on the conformant reference gets the verdict fail; "
            "for a fault of warn_suffices (it breaks only a should/may requirement) a warn suffices; a dead fault "
            "(the SUT hangs, exits or stops answering) is caught when the run's decision is fail and no negative "
            "case passed after the SUT died",
            "warn_suffices": WARN_SUFFICES,
            "paths": self.paths,
            "started": self.started,
            "seconds": round(self.seconds, 1),
            "workers": self.workers,
            "ok": self.ok,
            "conformant": self.conformant,
            "faults": [asdict(f) | {"detected": f.detected, "problems": f.problems} for f in self.findings],
            "holes": [f"{f.kind}/{f.fault} ({f.path})" for f in self.findings if f.detected == "hole"],
            "problems": self.problems,
        }


def _conformant_summary(run: Run) -> dict[str, Any]:
    """The conformant run: every case must pass (or not apply); a `should`/`may` case the binding gives nothing to
    test may be not run. On the external path's whole suite, `run` must also exit 0 with the decision pass."""
    errors = [f"crashed: {run.crashed}"] if run.crashed else []
    errors += [explain(r) for r in run.results.values() if r.verdict is Verdict.ERROR]
    others = (Verdict.PASS, Verdict.ERROR, *NOT_JUDGED)
    problems = errors + [
        explain(r)
        for r in run.results.values()
        if r.verdict not in others and not (r.verdict is Verdict.NOT_RUN and r.level != "shall")
    ]
    if run.lab is not None and (run.lab["exit_code"] != 0 or run.lab["decision"] != "pass"):
        problems.append(f"`{run.lab['command']}` exited {run.lab['exit_code']}, decision {run.lab['decision']}")
    counts = Counter(r.verdict.value for r in run.results.values())
    summary = {"seconds": round(run.seconds, 1), "counts": dict(counts), "problems": problems, "errors": errors}
    return summary | ({"lab_run": run.lab} if run.lab is not None else {})


def judge(run: Run, conformant: Run, cases: dict[str, Case]) -> Finding:
    """A fault's run, judged against the conformant run of its kind (same path) and the expected catchers."""
    fault = BY_NAME[str(run.fault)]
    passed = [
        i for i in cases if i in run.results and i in conformant.results and conformant.verdict(i) is Verdict.PASS
    ]
    expected = [i for i in fault.caught_by.get(run.kind, ()) if i in run.results]
    finding = Finding(
        kind=run.kind,
        fault=fault.name,
        component=fault.component,
        layer=fault.layer,
        description=fault.description,
        seconds=round(run.seconds, 1),
        catching=[i for i in passed if run.verdict(i) is Verdict.FAIL],
        warning=[i for i in passed if run.verdict(i) is Verdict.WARN],
        counts=dict(Counter(r.verdict.value for r in run.results.values())),
        expected=expected,
        missed=missed_catchers(cases, run.results, expected),
        errors=[explain(r) for r in run.results.values() if r.verdict is Verdict.ERROR],
        crashed=run.crashed,
        path=run.path,
    )
    if fault.dead:
        ran = {i: c for i, c in cases.items() if i in run.results}
        finding.dead = list(fault.dead)
        finding.decision = decision([r.to_json() for r in run.results.values()], ran)["outcome"]
        finding.false_passes = false_passes(run, cases, fault.dead)
        finding.checked = after_death(run, cases, fault.dead)
        parts = max(len(run.exits), 1) if run.path == "external" else -(-len(run.results) // CHUNK)
        died = len({t for t in run.deaths.values()})
        finding.died = f"the SUT died in {died} of {parts} slice(s), {len(finding.checked)} negative case(s) after it"
        if run.path == "external":
            ended = Counter("running" if e is None else f"exit {e}" for e in run.exits)
            finding.died += "; served references ended: " + ", ".join(f"{n} {how}" for how, n in sorted(ended.items()))
    return finding


# ---- the whole selftest ----------------------------------------------------------------------------------


def new_out_dir(reports: Path) -> Path:
    """reports/selftest-<timestamp>/, with a suffix if two selftests start within one second."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(100):
        out = reports / (f"selftest-{stamp}" + (f"-{n}" if n else ""))
        try:
            out.mkdir(parents=True)
            return out
        except FileExistsError:
            continue
    raise SelftestError(f"--reports {reports}: cannot make a new selftest folder there")


def selftest(
    the_plan: Plan, out: Path, workers: int = 1, progress: Any = None, paths: Iterable[str] = ("embedded",)
) -> Report:
    """Run the plan on each path (in `workers` processes when > 1), judge it, and write out/selftest.json and,
    per kind, fault and path as soon as its run is whole, out/<kind>/<fault>/<path>/results.jsonl with the pcaps
    of the cases that did not pass (external: the served reference's log where it died or a case could not be
    judged)."""
    paths = [p for p in PATHS if p in set(paths)]
    started = datetime.datetime.now(datetime.UTC)
    clock = time.monotonic()
    chunks: dict[tuple[str, str | None, str], list[Run]] = {}
    merged: dict[tuple[str, str | None, str], Run] = {}
    with tempfile.TemporaryDirectory() as certs, _deaths_quiet():
        tasks = _tasks(the_plan, out, Path(certs), paths)
        expected = Counter((t.kind, t.fault, t.path) for t in tasks)
        if workers <= 1:
            finished: Iterable[Run] = map(run_task, tasks)
        else:  # spawned workers start clean: no inherited threads or sockets
            spawn = multiprocessing.get_context("spawn")
            pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=spawn, initializer=_quiet_deaths)
            futures = [pool.submit(run_task, t) for t in tasks]
            finished = (f.result() for f in concurrent.futures.as_completed(futures))
        try:
            for run in finished:
                key = (run.kind, run.fault, run.path)
                chunks.setdefault(key, []).append(run)
                if len(chunks[key]) == expected[key]:  # the run is whole: its results go out now
                    merged[key] = _merge(chunks[key])
                    _write_results(out / run.kind / (run.fault or CONFORMANT) / run.path, merged[key], the_plan)
                if progress is not None:
                    progress(run)
        finally:
            if workers > 1:
                pool.shutdown(cancel_futures=True)
    report = Report(started.isoformat(timespec="seconds"), 0.0, workers, str(out), paths)
    for path in paths:
        for kind, faults in the_plan.faults.items():
            cases = {c.id: c for c in the_plan.cases[kind]}
            runs = {f: merged[kind, f, path] for f in (None, *faults)}
            report.conformant.setdefault(kind, {})[path] = _conformant_summary(runs[None])
            report.findings += [judge(runs[f], runs[None], cases) for f in faults]
    report.findings.sort(key=lambda f: (list(the_plan.faults).index(f.kind), kind_faults(f.kind).index(f.fault)))
    report.seconds = time.monotonic() - clock
    (out / "selftest.json").write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    return report


def _write_results(folder: Path, run: Run, the_plan: Plan) -> None:
    """A whole run's results.jsonl, in suite order, as soon as its last slice is in."""
    cases = the_plan.cases[run.kind]
    ResultsFile(folder / "results.jsonl").extend(run.results[c.id] for c in cases if c.id in run.results)


SHOWN = 4  # catching cases named per row of the table


def render(report: Report, console: Any) -> None:
    """The detection matrix for people: one row per fault and path with its catching cases, then every
    problem."""
    from rich.table import Table
    from rich.text import Text

    for kind, by_path in report.conformant.items():
        for path, summary in by_path.items():
            counts = ", ".join(f"{n} {v}" for v, n in sorted(summary["counts"].items()))
            lab = summary.get("lab_run")
            ran = f"; `{lab['command']}` exit {lab['exit_code']}, decision {lab['decision']}" if lab else ""
            console.print(f"{kind} conformant reference, {path}: {counts} ({summary['seconds']} s){ran}")
    table = Table(title="Detection matrix: cases that fail (or warn) with each fault", title_justify="left")
    for column in ("kind", "fault", "path", "detected", "fail", "warn", "cases (all in selftest.json)", "s"):
        table.add_column(column, overflow="fold", justify="right" if column in ("fail", "warn", "s") else "left")
    styles = {"fail": "green", "warn": "yellow", "decision": "green", "hole": "bold red", "crashed": "bold red"}
    for f in report.findings:
        shown = f.catching or f.warning
        cases = ", ".join(shown[:SHOWN]) + (f" +{len(shown) - SHOWN}" if len(shown) > SHOWN else "")
        if f.dead:
            cases = f"decision {f.decision}; {f.died}" + (f"; fail: {cases}" if cases else "")
        bad = f.detected in ("hole", "crashed", "false pass")
        detected = Text(f.detected.upper() if bad else f.detected, style=styles.get(f.detected, "bold red"))
        row = (f.kind, f.fault, f.path, detected, str(len(f.catching)), str(len(f.warning)), cases, str(f.seconds))
        table.add_row(*row)
    console.print(table)
    for problem in report.problems:
        console.print(Text(problem, style="red"))
    holes = sum(f.detected == "hole" for f in report.findings)
    caught = sum(f.caught for f in report.findings)
    warned = sum(f.detected == "warn" for f in report.findings)
    dead = sum(f.detected == "decision" for f in report.findings)
    console.print(
        f"{len(report.findings)} fault runs on {' and '.join(report.paths)}: {caught} caught ({warned} by warnings "
        f"only, as their requirement is should/may; {dead} dead SUTs by the decision alone), {holes} hole(s); "
        f"{report.seconds:.1f} s in {report.workers} worker process(es); {report.out}/selftest.json"
    )


def exit_code(report: Report) -> int:
    """0 all caught and conformant; 3 a harness error (a crashed run or an error verdict); 1 any other problem."""
    if not report.problems:
        return 0
    harness = any(s["errors"] for by_path in report.conformant.values() for s in by_path.values()) or any(
        f.crashed or f.errors for f in report.findings
    )
    return 3 if harness else 1


def run_command(
    kinds: Iterable[str],
    faults: Iterable[str],
    patterns: Iterable[str],
    workers: int,
    reports: str,
    as_json: bool,
    paths: Iterable[str] = PATHS,
) -> int:
    """`best-conformance selftest`: plan, run with a line per finished run, print the matrix; the exit code."""
    from rich.console import Console

    the_plan = plan(kinds, faults, patterns)
    paths = [p for p in PATHS if p in set(paths)]
    out = new_out_dir(Path(reports))
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    for kind in KIND_COMPONENTS:
        if kind not in the_plan.faults and unavailable(kind) and not kinds:
            console.print(f"selftest: {kind} left out: {unavailable(kind)}")
    runs = sum(1 + len(fs) for fs in the_plan.faults.values()) * len(paths)
    console.print(
        f"selftest: {runs} runs of {', '.join(the_plan.faults)} on the {' and '.join(paths)} path(s) "
        f"with {workers} worker(s), {SLICES_PER_WORKER} slices each at once, into {out}/"
    )

    def progress(run: Run) -> None:
        failed = sum(r.verdict is Verdict.FAIL for r in run.results.values())
        note = f"crashed: {run.crashed}" if run.crashed else f"{len(run.results)} cases, {failed} fail"
        if run.lab is not None:
            note += f"; `run` exit {run.lab['exit_code']}, decision {run.lab['decision']}"
        console.print(f"  {run.kind}/{run.fault or CONFORMANT} ({run.path}): {note} ({run.seconds:.1f} s)")

    report = selftest(the_plan, out, workers * SLICES_PER_WORKER, progress, paths)
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        screen = Console(soft_wrap=True)
        if not screen.is_terminal:
            screen.width = 160  # a CI log: wide enough for the matrix's rows not to fold
        render(report, screen)
    return exit_code(report)
