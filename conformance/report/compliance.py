"""compliance.json: the run's certification record, one JSON document validated by compliance.schema.json.

It says what was tested (harness, suite digest, ledger, SUT, profile digests, PICS, the binding with the basis
of every value), how the run went (times, reference SUT and faults, whether secrets were masked), the verdict of
every case with its evidence (pcap, decoded trace, key log: each with its sha256, paths relative to the run
folder), every requirement of the ledger with the cases that test it, and the decision:

    pass when every `shall` case of the suite that applies to the SUT (per its PICS) ran and passed, no case
    ended in error, and every result line was readable.

A case left out of the run (-k) or not run (the profile lacks what it needs) counts against `pass`: a partial
run does not certify anything.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from conformance import __version__
from conformance.engine.results import load_results
from conformance.masking import profile_secrets

FORMAT, FORMAT_VERSION = "best-conformance/compliance", 1
COMPLIANCE = "compliance.json"
SCHEMA = Path(__file__).with_name("compliance.schema.json")
DECISION_RULE = (
    "pass when every shall case of the suite that applies to the SUT (per its PICS) ran and passed, no case "
    "ended in error, and every result was readable; a case not run or left out counts against pass"
)
# worst first: a requirement's verdict is the worst of its cases'
VERDICT_ORDER = ("error", "fail", "inconclusive", "not run", "warn", "pass", "not applicable", "skipped")
NOT_PASSED_SHALL = ("fail", "inconclusive")
NOT_RUN = ("not run", "skipped")


class ComplianceError(ValueError):
    """compliance.json is missing, unreadable or does not match its schema; the message says which."""


def canonical(value: Any) -> bytes:
    """The canonical JSON octets of a value (sorted keys, no spaces, UTF-8): what digests and signatures cover."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def digest(value: Any) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


def file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            sha.update(block)
    return sha.hexdigest()


def iso(moment: datetime.datetime | float) -> str:
    """ISO 8601 UTC with milliseconds and a Z."""
    if not isinstance(moment, datetime.datetime):
        moment = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    return moment.astimezone(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---- writing -----------------------------------------------------------------------------------------


def write_compliance(
    run_dir: str | Path,
    profile: Any,
    *,
    started: datetime.datetime,
    finished: datetime.datetime,
    reference: bool,
    faults: Iterable[str],
    reveal_secrets: bool = False,
    suite_files: Iterable[str | Path] | None = None,
    profile_file: str | Path | None = None,
    mode: str = "conformance",
) -> Path | None:
    """Write RUN_DIR/compliance.json and traces/<CASE>.json from results.jsonl; None when no case ran.

    suite_files: the case files of the run (default: the shipped suite of the profile's SUT kind); profile_file:
    the profile as given (default: the file the profile was loaded from, if any). A fuzz.json in the run folder
    (best-conformance fuzz, or --best-fuzz) becomes the `robustness` section; mode "fuzz" (a fuzz campaign) is
    decided on its findings (FUZZ_DECISION_RULE) instead of the suite's shall cases. Masked runs
    keep no DTLS key log: each is listed with its sha256 and `withheld`, and removed from the run folder.
    """
    run_dir = Path(run_dir)
    results_path = run_dir / "results.jsonl"
    if not results_path.exists():
        return None
    loaded = load_results(results_path)
    results = sorted(loaded.results, key=lambda r: r["case"])
    files = _suite_files(profile, suite_files)
    cases = _suite_cases(files)
    ledger, ledger_record = _ledger()
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "harness": {"name": "best-conformance", "version": __version__, "git_commit": _git_commit()},
        "suite": {"version": _files_digest(files), "cases": len(cases)},
        "ledger": ledger_record,
        "sut": {k: getattr(profile.sut, k) for k in ("kind", "vendor", "product", "version")},
        "profile": _profile_record(profile, profile_file),
        "pics": profile.pics.model_dump(mode="json"),
        "binding": [
            {"key": p.key, "value": p.value, "basis": p.basis, "source": p.source} for p in profile.binding.parameters()
        ],
        "run": {
            "id": run_dir.name,
            "started": iso(started),
            "finished": iso(finished),
            "reference": bool(reference),
            "faults": sorted(set(faults)),
            "secrets": "revealed" if reveal_secrets else "masked",
            "mode": mode,
        },
        "decision": decision(results, cases, loaded.unreadable, applies=_applies_to(profile)),
        "totals": dict(sorted(Counter(r["verdict"] for r in results).items())),
        "requirements": _requirements(ledger, results, cases, profile.sut.kind),
        "cases": [_case(r, cases.get(r["case"]), run_dir, reveal_secrets) for r in results],
    }
    robustness = _robustness(run_dir)
    if robustness is not None:
        doc["robustness"] = robustness
        _robustness_verdicts(doc["requirements"], robustness)
        if mode == "fuzz":
            doc["decision"] = fuzz_decision(robustness, doc["decision"])
    if not reveal_secrets:  # the results are masked already; this catches the profile's own secrets anywhere
        doc = profile_secrets(profile).scrub(doc)
    out = run_dir / COMPLIANCE
    out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def _profile_record(profile: Any, profile_file: str | Path | None) -> dict[str, Any]:
    """Which profile the run used: its file, digests of its PICS and PIXIT, and the SUT's endpoints."""
    return {
        "file": str(profile_file or getattr(profile, "path", None) or "") or None,
        "pics_sha256": digest(profile.pics.model_dump(mode="json")),
        "pixit_sha256": digest(profile.pixit.model_dump(mode="json")),
        "endpoints": sut_endpoints(profile),
    }


def sut_endpoints(profile: Any) -> dict[str, str]:
    """Where the run reached the SUT: its EMSDP or DTLS port (an embedded reference listens on a free one) and
    its key server, so that `dissect` and the Wireshark dissector read the run's pcaps on the right port."""
    found: dict[str, str] = {}
    if profile.sut.kind in ("hse", "ue"):  # towards a UE: where the harness's HSE listened
        found["hse"] = "{}:{}".format(*profile.hse_endpoint)
    if profile.sut.kind == "emse":
        found["emse"] = "{}:{}".format(*profile.emse_endpoint)
    if profile.endpoints.key_server and profile.sut.kind in ("hse", "emks"):
        found["key_server"] = profile.endpoints.key_server
    return found


def _suite_files(profile: Any, given: Iterable[str | Path] | None) -> list[Path]:
    from conformance.engine.model import suite_dir

    if given is None:
        given = [suite_dir(profile.sut.kind)]
    files: set[Path] = set()
    for item in given:
        path = Path(str(item).split("::", 1)[0])
        files.update(path.glob("*.y*ml") if path.is_dir() else [path] if path.is_file() else [])
    return sorted(files, key=lambda p: p.name)


def _files_digest(files: list[Path]) -> str:
    """sha256 over the suite files' names and contents, in name order: which suite ran."""
    sha = hashlib.sha256()
    for path in files:
        content = path.read_bytes()
        sha.update(canonical([path.name, len(content)]))
        sha.update(content)
    return sha.hexdigest()


def _suite_cases(files: list[Path]) -> dict[str, Any]:
    from conformance.engine.lint import load_suite

    cases, _report = load_suite(files)  # lint errors stopped the run already; what loads is what ran
    return {case.id: case for case in cases}


def _ledger() -> tuple[Any, dict[str, Any]]:
    """The shipped requirement ledger (None while the harness has none, or when it cannot be read) and the
    record's `ledger` field, whose `problem` then says why: no requirements rather than a failed run."""
    try:
        from conformance.requirements import shipped_ledger
    except ImportError:
        return None, {"version": None}
    try:
        ledger = shipped_ledger()
    except ValueError as exc:
        return None, {"version": None, "problem": " ".join(str(exc).split())[:500]}
    return ledger, {"version": _ledger_version(ledger)}


def _ledger_version(ledger: Any) -> str:
    """The ledger's own version, else the sha256 over its files (name and content, in name order)."""
    version = getattr(ledger, "version", None)
    if version:
        return str(version)
    return _files_digest(sorted((Path(s.path) for s in ledger.sources.values()), key=lambda p: p.name))


@functools.cache
def _git_commit() -> str | None:
    """The harness checkout's commit, or None for an installed harness (or without git)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists() or shutil.which("git") is None:
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def decision(
    results: list[dict[str, Any]],
    cases: dict[str, Any],
    unreadable: Iterable[str] = (),
    *,
    applies: Callable[[Any], bool] | None = None,
) -> dict[str, Any]:
    """The run's decision (DECISION_RULE) with its reason in one line. `applies(case)`: whether a case left out
    of the run applies to the SUT (per its PICS); without it every case left out counts."""
    ran = {r["case"] for r in results}
    shall = [r for r in results if r["level"] == "shall"]
    failed = [r["case"] for r in shall if r["verdict"] in NOT_PASSED_SHALL]
    errors = [r["case"] for r in results if r["verdict"] == "error"]
    left_out = [i for i, c in cases.items() if i not in ran and c.level == "shall" and (applies is None or applies(c))]
    not_run = sorted({r["case"] for r in shall if r["verdict"] in NOT_RUN} | set(left_out))
    unreadable = list(unreadable)
    outcome = "fail" if failed or errors or not_run or unreadable else "pass"
    record = {
        "rule": DECISION_RULE,
        "outcome": outcome,
        "reason": _reason(outcome, shall, failed, errors, not_run, unreadable),
        "failed_shall": failed,
        "errors": errors,
        "not_run": not_run,
    }
    if unreadable:
        record["unreadable"] = unreadable
    return record


def _reason(
    outcome: str,
    shall: list[dict[str, Any]],
    failed: list[str],
    errors: list[str],
    not_run: list[str],
    unreadable: list[str],
) -> str:
    if outcome == "pass":
        passed = sum(r["verdict"] == "pass" for r in shall)
        return f"every applicable shall case passed ({passed})"
    verdicts = {r["case"]: r["verdict"] for r in shall}
    parts = [
        f"{n} shall case(s) {what}"
        for what, n in (
            ("failed", sum(verdicts.get(i) == "fail" for i in failed)),
            ("inconclusive", sum(verdicts.get(i) == "inconclusive" for i in failed)),
            ("not run", len(not_run)),
        )
        if n
    ]
    parts += [f"{len(errors)} case(s) ended in a harness error"] if errors else []
    parts += [f"{len(unreadable)} result line(s) unreadable"] if unreadable else []
    return "; ".join(parts)


def _robustness(run_dir: Path) -> list[dict[str, Any]] | None:
    """fuzz.json as the `robustness` section: per interface its verdict, budget and findings, each finding with
    its case file and evidence (sha256, relative paths); None when the run fuzzed nothing."""
    if not (run_dir / "fuzz.json").is_file():
        return None
    entries = []
    for report in json.loads((run_dir / "fuzz.json").read_text(encoding="utf-8")).get("interfaces", []):
        findings = []
        for finding in report["findings"]:
            evidence = run_dir / finding["pcap"] if finding.get("pcap") else None
            findings.append(
                {
                    "case": finding["case"],
                    "oracle": finding["oracle"],
                    "summary": finding["summary"],
                    "file": _file(run_dir / finding["file"], run_dir),
                    "evidence": _file(evidence, run_dir) if evidence is not None and evidence.is_file() else None,
                }
            )
        entries.append(
            {
                "interface": report["interface"],
                "requirement": report["requirement"],
                "verdict": "warn" if findings else "pass",
                "examples": report["examples"],
                "seconds": round(report["seconds"], 3),
                "examples_per_second": report["examples_per_second"],
                "seed": report["seed"],
                "found_after": report.get("found_after"),
                "database": f"hypothesis-db/{report['interface']}",
                "findings": findings,
                "unconfirmed": list(report.get("unconfirmed") or []),
            }
        )
    return entries


def _file(path: Path, run_dir: Path) -> dict[str, str]:
    return {"path": path.resolve().relative_to(run_dir.resolve()).as_posix(), "sha256": file_sha256(path)}


def _robustness_verdicts(requirements: list[dict[str, Any]], robustness: list[dict[str, Any]]) -> None:
    """The robustness requirements fuzzing checked: tested, with the fuzz verdict and the findings' cases."""
    fuzzed = {entry["requirement"]: entry for entry in robustness}
    for requirement in requirements:
        entry = fuzzed.get(requirement["id"])
        if entry is not None:
            requirement.update(
                status="tested",
                untested=None,
                verdict=worst([entry["verdict"], *([requirement["verdict"]] if requirement["verdict"] else [])]),
                cases=sorted({*requirement["cases"], *(f["case"] for f in entry["findings"])}),
            )


FUZZ_DECISION_RULE = "pass when no interface fuzzed gave a finding (an oracle failure that reproduced)"


def fuzz_decision(robustness: list[dict[str, Any]], cases: dict[str, Any]) -> dict[str, Any]:
    """A fuzz campaign's decision: its findings, not a suite's shall cases (it ran none). `cases`: the decision
    over the findings' replays, whose harness errors and unreadable lines still count."""
    found = [f"{len(e['findings'])} finding(s) on {e['interface']}" for e in robustness if e["findings"]]
    outcome = "fail" if found or cases["errors"] or cases.get("unreadable") else "pass"
    reason = "; ".join(found) if found else f"no finding in {sum(e['examples'] for e in robustness)} examples"
    if cases["errors"]:
        reason += f"; {len(cases['errors'])} replay(s) ended in a harness error"
    return {
        **cases,
        "rule": FUZZ_DECISION_RULE,
        "outcome": outcome,
        "reason": reason,
        "failed_shall": [],
        "not_run": [],
    }


def _applies_to(profile: Any) -> Callable[[Any], bool]:
    from conformance.engine.runner import applicable

    return lambda case: applicable(case, profile) is None


def worst(verdicts: Iterable[str]) -> str | None:
    ranked = sorted(verdicts, key=lambda v: VERDICT_ORDER.index(v) if v in VERDICT_ORDER else 0)
    return ranked[0] if ranked else None


def _requirements(ledger: Any, results: list[dict[str, Any]], cases: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """Every requirement of the ledger that concerns this SUT kind, with the cases that test it."""
    if ledger is None:
        return []
    requirements = getattr(ledger, "requirements", None) or dict(ledger.items())
    verdicts: dict[str, dict[str, str]] = {}
    for r in results:
        for rid in r.get("requirements") or []:
            verdicts.setdefault(rid, {})[r["case"]] = r["verdict"]
    cited: dict[str, set[str]] = {}
    for case in cases.values():
        for rid in getattr(case, "requirements", ()) or ():
            cited.setdefault(rid, set()).add(case.id)
    entries = []
    for rid, req in sorted(requirements.items()):
        if kind not in (getattr(req, "sut", None) or (kind,)):
            continue
        ran = verdicts.get(rid, {})
        untested = getattr(req.untested, "reason", req.untested)
        if untested or not (ran or cited.get(rid)):
            status = "untested"
        elif not ran:
            status = "not run"
        elif set(ran.values()) <= {"not applicable", "skipped"}:
            status = "not applicable"
        else:
            status = "tested"
        entries.append(
            {
                "id": rid,
                "level": req.level,
                "source": req.source,
                "clause": req.clause,
                "text": req.text,
                "status": status,
                "untested": str(untested) if untested else None,
                "cases": sorted(set(ran) | cited.get(rid, set())),
                "verdict": worst(ran.values()),
            }
        )
    return entries


def _case(r: dict[str, Any], case: Any, run_dir: Path, reveal: bool) -> dict[str, Any]:
    return {
        "id": r["case"],
        "title": r["title"],
        "group": getattr(case, "group", "") or "",
        "level": r["level"],
        "refs": r["refs"],
        "requirements": list(r.get("requirements") or getattr(case, "requirements", ()) or ()),
        "verdict": r["verdict"],
        "reason": r.get("reason") or "",
        "expected": r.get("expected"),
        "observed": r.get("observed"),
        "failed_step": r.get("failed_step"),
        "started": iso(r.get("started") or 0.0),
        "duration": round(float(r.get("duration") or 0.0), 6),
        "binding_dependent": r.get("binding_dependent") or [],
        "notes": r.get("notes") or [],
        "evidence": _evidence(r, run_dir, reveal),
    }


def _evidence(r: dict[str, Any], run_dir: Path, reveal: bool) -> list[dict[str, Any]]:
    """pcap, decoded trace (written here to traces/<CASE>.json) and DTLS key log of one case."""
    case = r["case"]
    found = []
    pcap = run_dir / "pcaps" / f"{case}.pcap"
    if pcap.is_file():
        found.append(_item("pcap", pcap, run_dir))
    if r.get("trace"):
        trace = run_dir / "traces" / f"{case}.json"
        trace.parent.mkdir(exist_ok=True)
        trace.write_text(json.dumps(r["trace"], indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        found.append(_item("trace", trace, run_dir))
    keylog = Path(r["keylog"]) if r.get("keylog") else run_dir / "keylogs" / f"{case}.keys"
    if keylog.is_file():
        inside = keylog.resolve().is_relative_to(run_dir.resolve())
        item = _item("keylog", keylog, run_dir) if inside else {"kind": "keylog", "path": f"keylogs/{case}.keys"}
        item["sha256"] = file_sha256(keylog)
        if not reveal:  # a key log decrypts the session: it is a secret
            item["withheld"] = True
            if inside:
                keylog.unlink()
        elif not inside:
            (run_dir / "keylogs").mkdir(exist_ok=True)
            shutil.copyfile(keylog, run_dir / item["path"])
        found.append(item)
    return found


def _item(kind: str, path: Path, run_dir: Path) -> dict[str, Any]:
    return {"kind": kind, "path": path.resolve().relative_to(run_dir.resolve()).as_posix(), "sha256": file_sha256(path)}


# ---- reading -----------------------------------------------------------------------------------------


@functools.cache
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA.read_text(encoding="utf-8"))


def schema_problems(doc: Any) -> list[str]:
    """Where doc departs from compliance.schema.json, one line each: `cases/3/verdict: 'passed' is not ...`."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema())
    problems = []
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        problems.append(f"{where}: {error.message}")
    return problems


def load_compliance(path: str | Path) -> dict[str, Any]:
    """compliance.json of a run folder (or the file itself), validated; ComplianceError says what is wrong."""
    path = Path(path)
    if path.is_dir():
        path = path / COMPLIANCE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ComplianceError(f"{path}: missing; a run writes it (best-conformance run)") from None
    except (OSError, ValueError) as exc:
        raise ComplianceError(f"{path}: not readable as JSON: {exc}") from None
    problems = schema_problems(doc)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ComplianceError(f"{path}: does not match {SCHEMA.name}: {problems[0]}{more}")
    return doc


def run_binding(run_dir: str | Path) -> tuple[dict[str, Any], int | None]:
    """The binding a run used, as overrides of the default binding, and the UDP port its SUT listened on (HSE
    EMSDP or EMSE DTLS), from its compliance.json: what reading its pcaps needs."""
    from conformance.binding import load_binding

    doc = load_compliance(run_dir)
    defaults = load_binding()
    overrides = {
        entry["key"]: {"value": entry["value"], "source": entry["source"]}
        for entry in doc["binding"]
        if entry["key"] in defaults and entry["value"] != defaults[entry["key"]]
    }
    endpoints = doc["profile"].get("endpoints") or {}
    where = endpoints.get("hse") or endpoints.get("emse")
    return overrides, int(where.rsplit(":", 1)[1]) if where else None


def case_digests(doc: dict[str, Any]) -> dict[str, str]:
    """sha256 of each case's canonical JSON, by case id: what tells which case of a signed record changed."""
    digests: dict[str, str] = {}
    for index, case in enumerate(doc.get("cases") or []):
        key = str(case.get("id")) if isinstance(case, dict) else f"#{index}"
        digests[key if key not in digests else f"{key}#{index}"] = digest(case)
    return digests


def field_digests(doc: dict[str, Any]) -> dict[str, str]:
    """sha256 of every top-level field's canonical JSON except `cases` (those go case by case)."""
    return {name: digest(value) for name, value in doc.items() if name != "cases"}
