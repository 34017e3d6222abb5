"""Expected-results baselines: the cases a given SUT is known to fail, each with why, so its CI goes red only on
a new failure.

    # baseline for ACME HSE 2.1
    expected_failures:
      - case: HSE-SS-009
        reason: AUTN MAC is computed over the old SQN (ACME-1234)   # mandatory
        ticket: ACME-1234                                           # optional
        expires: 2026-12-31     # optional: from this day on, the failure counts as new again

A run with a baseline sorts every case the baseline names or that did not pass into: new (fail or inconclusive,
not expected, or expected by an expired entry), unchanged (expected, and still fail/inconclusive/warn), fixed
(expected, but passed: remove the entry), not run (expected, but not applicable or not selected). Exit code:
3 a harness error (a baseline never excuses an error verdict), 1 a new failure (or a fixed case with --strict),
else 0; a fixed case is a loud notice, not a failure, unless strict.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

FAILING = ("fail", "inconclusive", "not run")  # the verdicts that make a run exit 1
NOT_PASSING = (*FAILING, "warn")  # an expected failure that still does not pass is unchanged
ENTRY_FIELDS = ("case", "reason", "ticket", "expires")
FILE_NAME = "baseline.json"


class BaselineError(ValueError):
    """A baseline that cannot be used: one line naming the file, the entry and the fix."""


@dataclass(frozen=True)
class Entry:
    case: str
    reason: str
    ticket: str | None = None
    expires: str | None = None  # ISO date

    def expired(self, today: datetime.date) -> bool:
        return self.expires is not None and datetime.date.fromisoformat(self.expires) <= today


def load_baseline(path: str | Path, known_cases: set[str] | None = None) -> dict[str, Entry]:
    """The baseline's entries by case id; every problem raises BaselineError naming the entry and the fix.

    With known_cases, an entry naming any other case is an error too (a typo would silently excuse nothing).
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise BaselineError(f"baseline {path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise BaselineError(f"baseline {path}: not valid YAML: {' '.join(str(exc).split())}") from None
    if (
        not isinstance(data, dict)
        or set(data) != {"expected_failures"}
        or not isinstance(data["expected_failures"], list)
    ):
        raise BaselineError(f"baseline {path}: must be a mapping with one key, expected_failures: a list of entries")
    entries: dict[str, Entry] = {}
    for n, raw in enumerate(data["expected_failures"]):
        where = f"baseline {path}: expected_failures[{n}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("case"), str) or not raw["case"].strip():
            raise BaselineError(f"{where}: needs 'case: <case id>' and 'reason: <why it is expected to fail>'")
        case = raw["case"].strip()
        where += f" ({case})"
        unknown = sorted(set(raw) - set(ENTRY_FIELDS))
        if unknown:
            raise BaselineError(f"{where}: unknown field {unknown[0]!r}; an entry has {', '.join(ENTRY_FIELDS)}")
        if not isinstance(raw.get("reason"), str) or not raw["reason"].strip():
            raise BaselineError(f"{where}: reason is missing; say why this case is expected to fail")
        if case in entries:
            raise BaselineError(f"{where}: case listed twice; keep one entry")
        if known_cases is not None and case not in known_cases:
            raise BaselineError(f"{where}: no case {case} in the suite; fix the id or remove the entry")
        entries[case] = Entry(case, raw["reason"].strip(), _text(raw.get("ticket")), _date(raw.get("expires"), where))
    return entries


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _date(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime.date):
        return value.isoformat()
    try:
        return datetime.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise BaselineError(f"{where}: expires must be a date YYYY-MM-DD, got {value!r}") from None


def expected_failure(entries: dict[str, Entry] | None, case: str, today: datetime.date | None = None) -> str | None:
    """The reason this case is expected to fail, or None (not in the baseline, or its entry expired)."""
    entry = (entries or {}).get(case)
    if entry is None or entry.expired(today or datetime.date.today()):
        return None
    return entry.reason


@dataclass
class Comparison:
    baseline: str
    new: list[dict[str, Any]] = field(default_factory=list)
    unchanged: list[dict[str, Any]] = field(default_factory=list)
    fixed: list[dict[str, Any]] = field(default_factory=list)
    not_run: list[dict[str, Any]] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)  # entries past their date: their failures are new
    errors: list[dict[str, Any]] = field(default_factory=list)

    def exit_code(self, strict: bool = False) -> int:
        if self.errors:
            return 3
        return 1 if self.new or (strict and self.fixed) else 0

    def to_json(self, strict: bool = False) -> dict[str, Any]:
        return asdict(self) | {"strict": strict, "exit_code": self.exit_code(strict)}


def compare(
    entries: dict[str, Entry], results: list[dict[str, Any]], baseline: str, today: datetime.date | None = None
) -> Comparison:
    """Sort a run's results (results.jsonl lines) against the baseline's entries."""
    today = today or datetime.date.today()
    outcome = Comparison(baseline, expired=sorted(c for c, e in entries.items() if e.expired(today)))
    seen = set()
    for r in results:
        case, verdict, entry = r["case"], r["verdict"], entries.get(r["case"])
        seen.add(case)
        item = {"case": case, "verdict": verdict, "reason": r.get("reason", "")}
        live = entry is not None and not entry.expired(today)
        if verdict == "error":
            outcome.errors.append(item)
        elif verdict in FAILING and not live:
            outcome.new.append(item)
        elif entry is None:
            continue
        elif verdict in NOT_PASSING:
            outcome.unchanged.append(item | {"expected_because": entry.reason, "ticket": entry.ticket})
        elif verdict == "pass":
            outcome.fixed.append(item | {"expected_because": entry.reason, "ticket": entry.ticket})
        else:
            outcome.not_run.append(item)
    outcome.not_run += [{"case": c, "verdict": "not selected", "reason": ""} for c in entries if c not in seen]
    return outcome


def write_comparison(run_dir: Path, comparison: Comparison, strict: bool = False) -> Path:
    path = run_dir / FILE_NAME
    path.write_text(json.dumps(comparison.to_json(strict), indent=2) + "\n", encoding="utf-8")
    return path


def summary_lines(document: dict[str, Any]) -> list[str]:
    """What a person must read about a baseline comparison (baseline.json), most urgent first."""
    lines = [f"NEW FAILURE {i['case']}: {i['verdict']}: {i['reason']}" for i in document["new"]]
    lines += [f"FIXED {i['case']}: passes now; remove it from {document['baseline']}" for i in document["fixed"]]
    lines += [f"expired baseline entry {c}: its failure counts as new" for c in document["expired"]]
    counts = {k: len(document[k]) for k in ("new", "unchanged", "fixed", "not_run", "errors")}
    lines.append("baseline: " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items()))
    return lines


# ---- in a run: the pytest plugin and `best-conformance run --baseline` ------------------------------------


def load_for_suite(path: str | Path, kind: str) -> dict[str, Entry]:
    """A baseline checked against the suite of this SUT kind: every entry must name one of its cases."""
    from conformance.engine.lint import load_suite
    from conformance.engine.model import suite_dir

    cases, _ = load_suite(suite_dir(kind).glob("*.yaml"))
    return load_baseline(path, {c.id for c in cases})


def apply_to_item(entries: dict[str, Entry], result: Any, strict: bool) -> None:
    """pytest outcome of an expected failure: xfail while it still fails; with strict, a pass fails the item."""
    import pytest

    reason = expected_failure(entries, result.case)
    if reason is None:
        return
    if result.verdict.value in FAILING:
        pytest.xfail(f"baseline: {reason}")
    if strict and result.verdict.value == "pass":
        pytest.fail(f"{result.case} passes but the baseline expects it to fail ({reason}): remove it", pytrace=False)


def finish_run(run_dir: Path, entries: dict[str, Entry], path: str, strict: bool = False) -> Path:
    """Compare the run's results.jsonl with the baseline and write run_dir/baseline.json."""
    from conformance.engine.results import read_results

    results_file = run_dir / "results.jsonl"
    results = read_results(results_file) if results_file.exists() else []
    return write_comparison(run_dir, compare(entries, results, str(path)), strict)


def report_run(run_dir: Path, strict: bool, console: Any) -> int:
    """After `run --baseline`: print the comparison the run wrote and give the run's exit code."""
    path = run_dir / FILE_NAME
    if not path.exists():
        console.print(f"best-conformance: the run wrote no {path}")
        return 3
    document = json.loads(path.read_text(encoding="utf-8"))
    for line in summary_lines(document):
        style = "bold red" if line.startswith("NEW") else "bold yellow" if line.startswith(("FIXED", "exp")) else ""
        console.print(line, style=style, markup=False, highlight=False)
    return Comparison(**{f.name: document[f.name] for f in fields(Comparison)}).exit_code(strict)


def check_for_profile(path: str | Path, profile_path: str | Path) -> None:
    """Before a run: the baseline is valid for the profile's SUT kind (a broken profile is reported later)."""
    from conformance.profile import ProfileError, load_profile

    try:
        kind = load_profile(profile_path).sut.kind
    except ProfileError:
        return
    load_for_suite(path, kind)
