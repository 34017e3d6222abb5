"""Proving the suites on the reference SUTs (design.md 7): `best-conformance selftest`.

For each kind of reference SUT that ships a profile and a suite, run the suite against the conformant reference
(every case must pass or be not applicable), then once per catalogued fault of that kind's components. A fault
is *caught* when a case that passed on the conformant reference gets the verdict fail (a failed `shall` case):
a fault that only makes `should`/`may` cases warn, or cases inconclusive, would leave a certification decision
at pass, so it is a hole, unless WARN_SUFFICES says the fault breaks only a should/may requirement. Besides,
EXPECTED_CATCHERS names per fault the cases that must give their failing verdict (fail for `shall`, warn for
`should`/`may`); the suite tests share that table and the run-a-suite-against-a-reference logic below.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import fnmatch
import importlib.util
import json
import multiprocessing
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from conformance.engine.embedded import embedded_reference
from conformance.engine.lint import load_suite
from conformance.engine.model import Case, suite_dir
from conformance.engine.results import Result, ResultsFile, Verdict
from conformance.engine.runner import run_case
from conformance.keyserver.certs import CertificateDirectory
from conformance.profile import LoadedProfile, load_profile
from conformance.reference.faults import BY_NAME, CATALOGUE, parse_faults
from conformance.report.secrets import mask_result

# Which catalogue components each reference SUT kind implements, so which faults it can be run with.
KIND_COMPONENTS: dict[str, tuple[str, ...]] = {
    "hse": ("hse", "keyserver"),  # the reference HSE: EMSDP over UDP plus its EAS-facing key server
    "emks": ("keyserver",),  # the reference EMKS is a key server only
    "emse": ("emse",),  # the reference EMSE/EAS
}

# kind -> fault -> cases that must give their failing verdict with that fault on (the cheapest reliable catchers)
EXPECTED_CATCHERS: dict[str, dict[str, list[str]]] = {
    "hse": {
        # codec
        "wrong_tlv_tag": ["HSE-SR-001", "HSE-SS-002"],
        "wrong_tlv_length": ["HSE-SS-004", "HSE-SR-001"],
        "tlv_order_swapped": ["HSE-SS-003"],
        # protocol
        "missing_mandatory_tlv": ["HSE-SS-002", "HSE-SR-001"],
        "wrong_reply_command": ["HSE-SS-001"],
        "no_reply": ["HSE-SR-001"],
        "reply_from_wrong_port": ["HSE-SS-008"],
        "no_reject_on_unknown_command": ["HSE-RJ-001"],
        "session_id_zero": ["HSE-SS-001", "HSE-SR-001"],
        # crypto
        "wrong_fc": ["HSE-UP-001", "HSE-EAS-002"],
        "wrong_kdf_key": ["HSE-EAS-002"],
        "bad_autn_mac": ["HSE-SS-009", "HSE-SR-001"],
        "stale_sqn": ["HSE-SS-010", "HSE-MK-006"],
        "mac_not_verified": ["HSE-UP-003", "HSE-TE-004"],
        "replay_accepted": ["HSE-CT-001", "HSE-CT-002", "HSE-CT-004"],
        "wrong_truncation": ["HSE-UP-001"],
        "res_not_checked": ["HSE-SC-002"],
        "resync_ignored": ["HSE-SS-012"],
        # key server
        "client_cert_not_required": ["HSE-TLS-001"],
        "cert_identity_not_checked": ["HSE-TLS-003"],
        "wrong_register_status": ["HSE-EAS-001", "HSE-TLS-004"],
        "key_id_ignored": ["HSE-EAS-008"],
        "past_keys_not_kept": ["HSE-EAS-007"],
        "xml_entities_expanded": ["HSE-EAS-012"],
        "session_not_deleted": ["HSE-EAS-010"],
        "push_for_wrong_client": ["HSE-EAS-005"],
        "subscription_not_owned": ["HSE-EAS-013"],
        "tls12_not_supported": ["HSE-TLS-007"],
        "tls13_not_supported": ["HSE-TLS-008"],
    },
    "emks": {
        "client_cert_not_required": ["EMKS-TLS-001"],
        "cert_identity_not_checked": ["EMKS-REG-005", "EMKS-TLS-006"],
        "wrong_register_status": ["EMKS-REG-001", "EMKS-TLS-003"],
        "key_id_ignored": ["EMKS-KEY-002", "EMKS-KEY-004", "EMKS-KEY-007"],
        "past_keys_not_kept": ["EMKS-KEY-002", "EMKS-KEY-003"],
        "xml_entities_expanded": ["EMKS-REG-007"],
        "session_not_deleted": ["EMKS-DEREG-002"],
        "push_for_wrong_client": ["EMKS-SUB-002", "EMKS-SUB-003"],
        "subscription_not_owned": ["EMKS-SUB-004"],
        "tls12_not_supported": ["EMKS-TLS-007"],
        "tls13_not_supported": ["EMKS-TLS-008"],
    },
    "emse": {
        "emse_server_cert_not_checked": ["EMSE-REG-006"],
        "emse_no_client_cert": ["EMSE-REG-001", "EMSE-REG-003"],
        "emse_registers_wrong_id": ["EMSE-REG-001", "EMSE-REG-002"],
        "emse_key_cached": ["EMSE-KEY-010"],
        "emse_any_psk_identity": ["EMSE-KEY-007", "EMSE-KEY-008", "EMSE-KEY-009"],
        "emse_never_deregisters": ["EMSE-DEREG-001"],
        "emse_uses_deleted_session": ["EMSE-DEREG-002"],
        "emse_old_tls": ["EMSE-REG-005"],
        "emse_wrong_content_type": ["EMSE-REG-001"],
        "emse_no_tls12": ["EMSE-REG-007"],
        "emse_no_tls13": ["EMSE-REG-008"],
    },
}

# Modules a kind's reference needs beyond the base install (python-mbedtls has no wheels past CPython 3.12).
KIND_NEEDS: dict[str, tuple[str, ...]] = {"emse": ("mbedtls",)}

# Faults that break only a `should`/`may` requirement (the requirement ledger's level): a warning is the right
# verdict for them, so a `should`/`may` case that warns catches them. Every other fault needs a fail.
WARN_SUFFICES: dict[str, str] = {
    "tlv_order_swapped": "POL-TLV-001 (should): TS 33.163 fixes no TLV order; the binding's order is policy",
    "reply_from_wrong_port": "POL-NET-001 (should): replying from the port asked is the binding's policy",
    "no_reject_on_unknown_command": "POL-ERR-001 (should): rejecting an unknown command is the binding's policy",
    "past_keys_not_kept": "S003-KM-003, SOL10-EMKS-006 (may): keeping past keys is optional",
    "xml_entities_expanded": "POL-REST-003 (should): safe XML parsing is hygiene no 3GPP clause requires",
}

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


def shipped_profile(name: str) -> Path:
    """A profile shipped with the harness: inside an installed wheel, or in profiles/ of a checkout."""
    packaged = resources.files("conformance").joinpath("profiles", name)
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "profiles" / name


def unavailable(kind: str) -> str | None:
    """Why the selftest cannot run this kind here, or None. A kind joins once its profile and suite ship."""
    if kind not in KIND_COMPONENTS:
        return "unknown SUT kind"
    if not shipped_profile(f"reference-{kind}.yaml").is_file() or not any(suite_dir(kind).glob("*.yaml")):
        return "no shipped reference profile and suite yet"
    missing = [m for m in KIND_NEEDS.get(kind, ()) if importlib.util.find_spec(m) is None]
    return f"its reference needs the module {missing[0]}, not installed" if missing else None


def available_kinds() -> list[str]:
    return [kind for kind in KIND_COMPONENTS if unavailable(kind) is None]


def kind_faults(kind: str) -> list[str]:
    """The catalogue's faults a reference SUT of this kind can be run with, in catalogue order."""
    return [f.name for f in CATALOGUE if f.component in KIND_COMPONENTS[kind]]


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
    if orphans:
        component = BY_NAME[orphans[0]].component
        raise SelftestError(f"--fault {orphans[0]}: no selected --kind runs {component} faults; drop --kind")
    cases = {k: load_cases(k, patterns) for k in kinds}
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(c.id, pattern) for cs in cases.values() for c in cs):
            raise SelftestError(f"--case {pattern}: matches no case of {', '.join(kinds)}; see `best-conformance list`")
    return Plan(by_kind, cases)


# ---- one run: a kind's selected cases against its reference, conformant or with one fault -----------------

CHUNK = 24  # cases per task: each task starts a fresh reference (~0.2 s) and runs them in suite order


@dataclass
class Run:
    kind: str
    fault: str | None
    seconds: float
    results: dict[str, Result]  # case id -> its result
    crashed: str = ""  # the run itself failed (the reference would not start, ...)

    def verdict(self, case_id: str) -> Verdict:
        return self.results[case_id].verdict


@dataclass(frozen=True)
class Task:
    kind: str
    fault: str | None
    cases: list[Case]
    out: Path  # pcaps of this kind and fault go to out/pcaps/
    certs: Path  # one CA for the whole selftest: issued once, shared by every run


def run_task(task: Task) -> Run:
    """Run the task's cases against a fresh reference of its kind; keep the pcaps of cases that did not pass."""
    start = time.monotonic()
    try:
        profile = load_profile(shipped_profile(f"reference-{task.kind}.yaml"))
        with embedded_reference(profile, frozenset({task.fault} - {None}), certs=CertificateDirectory(task.certs)) as (
            running,
            certs,
        ):
            results = [run_case(case, running, task.out, certs=certs) for case in task.cases]
    except Exception as exc:  # reported as a crashed run, with its reason
        return Run(task.kind, task.fault, time.monotonic() - start, {}, crashed=f"{type(exc).__name__}: {exc}")
    for result in results:
        if result.verdict in (Verdict.PASS, Verdict.NOT_APPLICABLE) and result.pcap:
            Path(result.pcap).unlink(missing_ok=True)  # evidence is kept where something was found
    masked = [mask_result(r) for r in results]  # keys stay out of the evidence, as in a run's
    return Run(task.kind, task.fault, time.monotonic() - start, {r.case: r for r in masked})


def _tasks(the_plan: Plan, out: Path, certs: Path) -> list[Task]:
    """The conformant runs first, then each fault's, each cut into slices of CHUNK cases in suite order.

    The slicing does not depend on the number of workers: a reference keeps state from case to case (keys it
    provisioned, SQNs), so the same slices give the same matrix with any -j, while a slow fault (every reply
    timing out) is still spread over several workers."""
    runs = [(k, None) for k in the_plan.faults] + [(k, f) for k, fs in the_plan.faults.items() for f in fs]
    tasks = []
    for kind, fault in runs:
        cases = the_plan.cases[kind]
        folder = out / kind / (fault or CONFORMANT)
        tasks += [Task(kind, fault, cases[n : n + CHUNK], folder, certs) for n in range(0, len(cases), CHUNK)]
    return tasks


def _merge(runs: list[Run]) -> Run:
    """One kind-and-fault run from its chunks, in suite order."""
    first = runs[0]
    results = {i: r for run in runs for i, r in run.results.items()}
    crashed = "; ".join(run.crashed for run in runs if run.crashed)
    return Run(first.kind, first.fault, sum(run.seconds for run in runs), results, crashed)


# ---- judging ---------------------------------------------------------------------------------------------

NOT_JUDGED = (Verdict.NOT_APPLICABLE, Verdict.SKIPPED)


@dataclass
class Finding:
    """What one fault did to its kind's suite."""

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

    @property
    def caught(self) -> bool:
        return bool(self.catching) or (self.fault in WARN_SUFFICES and bool(self.warning))

    @property
    def detected(self) -> str:
        """fail (a shall case fails), warn (only should/may cases, enough for this fault), crashed or hole."""
        return "fail" if self.catching else "warn" if self.caught else "crashed" if self.crashed else "hole"

    @property
    def problems(self) -> list[str]:
        found = [f"crashed: {self.crashed}"] if self.crashed else []
        if not self.crashed and not self.caught:
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
    conformant: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind -> summary
    findings: list[Finding] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        found = [f"{kind} conformant: {p}" for kind, s in self.conformant.items() for p in s["problems"]]
        return found + [f"{f.kind}/{f.fault}: {p}" for f in self.findings for p in f.problems]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": "a fault is caught when a case that passed on the conformant reference gets the verdict fail; "
            "for a fault of warn_suffices (it breaks only a should/may requirement) a warn suffices",
            "warn_suffices": WARN_SUFFICES,
            "started": self.started,
            "seconds": round(self.seconds, 1),
            "workers": self.workers,
            "ok": self.ok,
            "conformant": self.conformant,
            "faults": [asdict(f) | {"detected": f.detected, "problems": f.problems} for f in self.findings],
            "holes": [f"{f.kind}/{f.fault}" for f in self.findings if f.detected == "hole"],
            "problems": self.problems,
        }


def _conformant_summary(run: Run) -> dict[str, Any]:
    errors = [f"crashed: {run.crashed}"] if run.crashed else []
    errors += [explain(r) for r in run.results.values() if r.verdict is Verdict.ERROR]
    others = (Verdict.PASS, Verdict.ERROR, *NOT_JUDGED)
    problems = errors + [explain(r) for r in run.results.values() if r.verdict not in others]
    counts = Counter(r.verdict.value for r in run.results.values())
    return {"seconds": round(run.seconds, 1), "counts": dict(counts), "problems": problems, "errors": errors}


def judge(run: Run, conformant: Run, cases: dict[str, Case]) -> Finding:
    """A fault's run, judged against the conformant run of its kind and the expected catchers."""
    fault = BY_NAME[str(run.fault)]
    passed = [
        i for i in cases if i in run.results and i in conformant.results and conformant.verdict(i) is Verdict.PASS
    ]
    expected = [i for i in EXPECTED_CATCHERS.get(run.kind, {}).get(fault.name, []) if i in run.results]
    return Finding(
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
    )


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


def selftest(the_plan: Plan, out: Path, workers: int = 1, progress: Any = None) -> Report:
    """Run the plan (in `workers` processes when > 1), judge it, and write out/selftest.json and, per kind and
    fault, out/<kind>/<fault>/results.jsonl with the pcaps of the cases that did not pass."""
    started = datetime.datetime.now(datetime.UTC)
    clock = time.monotonic()
    chunks: dict[tuple[str, str | None], list[Run]] = {}
    with tempfile.TemporaryDirectory() as certs:
        tasks = _tasks(the_plan, out, Path(certs))
        if workers <= 1:
            finished: Iterable[Run] = map(run_task, tasks)
        else:  # spawned workers start clean: no inherited threads or sockets
            pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
            futures = [pool.submit(run_task, t) for t in tasks]
            finished = (f.result() for f in concurrent.futures.as_completed(futures))
        try:
            for run in finished:
                chunks.setdefault((run.kind, run.fault), []).append(run)
                if progress is not None:
                    progress(run)
        finally:
            if workers > 1:
                pool.shutdown(cancel_futures=True)
    report = Report(started.isoformat(timespec="seconds"), 0.0, workers, str(out))
    for kind, faults in the_plan.faults.items():
        cases = {c.id: c for c in the_plan.cases[kind]}
        runs = {f: _merge(chunks[kind, f]) for f in (None, *faults)}
        for fault, run in runs.items():
            _write_results(out / kind / (fault or CONFORMANT), run, the_plan.cases[kind])
        report.conformant[kind] = _conformant_summary(runs[None])
        report.findings += [judge(runs[f], runs[None], cases) for f in faults]
    report.seconds = time.monotonic() - clock
    (out / "selftest.json").write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    return report


def _write_results(folder: Path, run: Run, cases: list[Case]) -> None:
    log = ResultsFile(folder / "results.jsonl")
    for case in cases:
        if case.id in run.results:
            log.append(run.results[case.id])


SHOWN = 4  # catching cases named per row of the table


def render(report: Report, console: Any) -> None:
    """The detection matrix for people: one row per fault with its catching cases, then every problem."""
    from rich.table import Table
    from rich.text import Text

    for kind, summary in report.conformant.items():
        counts = ", ".join(f"{n} {v}" for v, n in sorted(summary["counts"].items()))
        console.print(f"{kind} conformant reference: {counts} ({summary['seconds']} s)")
    table = Table(title="Detection matrix: cases that fail (or warn) with each fault", title_justify="left")
    for column in ("kind", "fault", "detected", "fail", "warn", "cases (all in selftest.json)", "s"):
        table.add_column(column, overflow="fold", justify="right" if column in ("fail", "warn", "s") else "left")
    styles = {"fail": "green", "warn": "yellow", "hole": "bold red", "crashed": "bold red"}
    for f in report.findings:
        shown = f.catching or f.warning
        cases = ", ".join(shown[:SHOWN]) + (f" +{len(shown) - SHOWN}" if len(shown) > SHOWN else "")
        detected = Text(
            f.detected.upper() if f.detected in ("hole", "crashed") else f.detected, style=styles[f.detected]
        )
        table.add_row(f.kind, f.fault, detected, str(len(f.catching)), str(len(f.warning)), cases, str(f.seconds))
    console.print(table)
    for problem in report.problems:
        console.print(Text(problem, style="red"))
    holes = sum(f.detected == "hole" for f in report.findings)
    caught = sum(f.caught for f in report.findings)
    warned = sum(f.detected == "warn" for f in report.findings)
    console.print(
        f"{len(report.findings)} fault runs: {caught} caught ({warned} by warnings only, as their requirement is "
        f"should/may), {holes} hole(s); "
        f"{report.seconds:.1f} s with {report.workers} worker(s); {report.out}/selftest.json"
    )


def exit_code(report: Report) -> int:
    """0 all caught and conformant; 3 a harness error (a crashed run or an error verdict); 1 any other problem."""
    if not report.problems:
        return 0
    harness = any(s["errors"] for s in report.conformant.values()) or any(
        f.crashed or f.errors for f in report.findings
    )
    return 3 if harness else 1


def run_command(
    kinds: Iterable[str], faults: Iterable[str], patterns: Iterable[str], workers: int, reports: str, as_json: bool
) -> int:
    """`best-conformance selftest`: plan, run with a line per finished run, print the matrix; the exit code."""
    from rich.console import Console

    the_plan = plan(kinds, faults, patterns)
    out = new_out_dir(Path(reports))
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    for kind in KIND_COMPONENTS:
        if kind not in the_plan.faults and unavailable(kind) and not kinds:
            console.print(f"selftest: {kind} left out: {unavailable(kind)}")
    runs = sum(1 + len(fs) for fs in the_plan.faults.values())
    console.print(f"selftest: {runs} runs of {', '.join(the_plan.faults)} with {workers} worker(s) into {out}/")

    def progress(run: Run) -> None:
        failed = sum(r.verdict is Verdict.FAIL for r in run.results.values())
        note = f"crashed: {run.crashed}" if run.crashed else f"{len(run.results)} cases, {failed} fail"
        console.print(f"  {run.kind}/{run.fault or CONFORMANT}: {note} ({run.seconds:.1f} s)")

    report = selftest(the_plan, out, workers, progress)
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        screen = Console(soft_wrap=True)
        if not screen.is_terminal:
            screen.width = 150  # a CI log: wide enough for the matrix's rows not to fold
        render(report, screen)
    return exit_code(report)
