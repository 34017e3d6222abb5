"""Expected-results baselines, on real runs of the reference HSE with the fault res_not_checked (which makes
HSE-SC-002 fail): new failures exit 1, expected ones 0, fixed ones 0 with a notice (1 with --strict-baseline),
and a baseline naming an unknown case or lacking a reason is bad input (exit 2) before anything runs."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.baseline import BaselineError, compare, load_baseline
from conformance.engine.results import read_results

ROOT = Path(__file__).resolve().parents[2]
SELECTION = "HSE-SC-001 or HSE-SC-002 or HSE-SR-001"  # with res_not_checked, only HSE-SC-002 fails

EXPECTING_SC_002 = """\
expected_failures:
  - case: HSE-SC-002
    reason: RES is not checked (the reference runs with res_not_checked)
    ticket: REF-1
  - case: HSE-SR-001
    reason: was broken in an older build
  - case: HSE-UP-001
    reason: not selected by this run's -k
"""


def run(tmp_path: Path, baseline: str | None, *extra: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`best-conformance run` on the embedded reference HSE with res_not_checked, with this baseline."""
    argv = ["run", "--fault", "res_not_checked", "-k", SELECTION, "--reports", str(tmp_path / "reports"), *extra]
    if baseline is not None:
        (tmp_path / "baseline.yaml").write_text(baseline, encoding="utf-8")
        argv += ["--baseline", str(tmp_path / "baseline.yaml")]
    done = subprocess.run(
        [sys.executable, "-m", "conformance.cli", *argv], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    runs = sorted((tmp_path / "reports").iterdir()) if (tmp_path / "reports").exists() else []
    return done, runs[-1] if runs else tmp_path / "reports"


@pytest.fixture(scope="module")
def expected_run(tmp_path_factory):
    return run(tmp_path_factory.mktemp("expected"), EXPECTING_SC_002)


def test_without_a_baseline_the_failure_exits_1(tmp_path):
    done, run_dir = run(tmp_path, None)
    assert done.returncode == 1, done.stderr[-2000:]
    assert not (run_dir / "baseline.json").exists()


def test_an_expected_failure_exits_0_and_a_fixed_case_is_announced(expected_run):
    done, run_dir = expected_run
    assert done.returncode == 0, done.stderr[-2000:]
    comparison = json.loads((run_dir / "baseline.json").read_text(encoding="utf-8"))
    assert [i["case"] for i in comparison["unchanged"]] == ["HSE-SC-002"]
    assert comparison["unchanged"][0]["ticket"] == "REF-1"
    assert [i["case"] for i in comparison["fixed"]] == ["HSE-SR-001"]
    assert comparison["not_run"] == [{"case": "HSE-UP-001", "verdict": "not selected", "reason": ""}]
    assert comparison["new"] == [] and comparison["exit_code"] == 0
    err = " ".join(done.stderr.split())
    assert "FIXED HSE-SR-001: passes now; remove it from" in err
    assert "baseline: 0 new, 1 unchanged, 1 fixed, 1 not run, 0 errors" in err


def test_an_expected_failure_is_an_xfail_in_junit(expected_run):
    _, run_dir = expected_run
    junit = (run_dir / "junit.xml").read_text(encoding="utf-8")
    assert 'type="pytest.xfail"' in junit and "baseline: RES is not checked" in junit


def test_strict_baseline_makes_a_fixed_case_exit_1(tmp_path):
    done, run_dir = run(tmp_path, EXPECTING_SC_002, "--strict-baseline")
    assert done.returncode == 1, done.stderr[-2000:]
    comparison = json.loads((run_dir / "baseline.json").read_text(encoding="utf-8"))
    assert comparison["strict"] is True and comparison["new"] == []
    assert [i["case"] for i in comparison["fixed"]] == ["HSE-SR-001"]


def test_a_new_failure_exits_1(tmp_path):
    done, run_dir = run(tmp_path, "expected_failures:\n  - {case: HSE-SR-001, reason: flaky once}\n")
    assert done.returncode == 1, done.stderr[-2000:]
    comparison = json.loads((run_dir / "baseline.json").read_text(encoding="utf-8"))
    assert [i["case"] for i in comparison["new"]] == ["HSE-SC-002"]
    assert "NEW FAILURE HSE-SC-002: fail" in " ".join(done.stderr.split())


def test_an_expired_entry_no_longer_excuses_its_failure(expected_run, tmp_path):
    """The same real results, compared on a day past the entry's expiry."""
    _, run_dir = expected_run
    results = read_results(run_dir / "results.jsonl")
    entries = load_baseline_text(tmp_path, EXPECTING_SC_002.replace("ticket: REF-1", "expires: 2030-01-31"))
    before = compare(entries, results, "b.yaml", today=datetime.date(2030, 1, 30))
    after = compare(entries, results, "b.yaml", today=datetime.date(2030, 1, 31))
    assert [i["case"] for i in before.unchanged] == ["HSE-SC-002"] and before.exit_code() == 0
    assert [i["case"] for i in after.new] == ["HSE-SC-002"] and after.expired == ["HSE-SC-002"]
    assert after.exit_code() == 1


def load_baseline_text(folder: Path, text: str, known: set[str] | None = None):
    (folder / "baseline.yaml").write_text(text, encoding="utf-8")
    return load_baseline(folder / "baseline.yaml", known)


# ---- bad baselines: one line naming the entry, exit 2, nothing runs ------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("expected_failures:\n  - case: HSE-SC-002\n", "expected_failures[0] (HSE-SC-002): reason is missing"),
        ("expected_failures:\n  - {case: HSE-SC-002, reason: '  '}\n", "(HSE-SC-002): reason is missing"),
        ("expected_failures:\n  - {case: HSE-XX-999, reason: typo}\n", "(HSE-XX-999): no case HSE-XX-999 in the"),
        ("expected_failures:\n  - {case: HSE-SC-002, reason: r, owner: me}\n", "unknown field 'owner'"),
        ("expected_failures:\n  - {case: HSE-SC-002, reason: r, expires: soon}\n", "expires must be a date"),
        ("expected_failures:\n  - {case: HSE-SC-002, reason: a}\n  - {case: HSE-SC-002, reason: b}\n", "twice"),
        ("expected_failures:\n  - {reason: no case}\n", "expected_failures[0]: needs 'case: <case id>'"),
        ("- {case: HSE-SC-002, reason: r}\n", "must be a mapping with one key, expected_failures"),
        ("expected_failures: [\n", "not valid YAML"),
    ],
)
def test_a_bad_baseline_is_named(tmp_path, text, message):
    with pytest.raises(BaselineError) as error:
        load_baseline_text(tmp_path, text, {"HSE-SC-002"})
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("expected_failures:\n  - {case: HSE-XX-999, reason: typo}\n", "no case HSE-XX-999 in the suite"),
        ("expected_failures:\n  - case: HSE-SC-002\n", "expected_failures[0] (HSE-SC-002): reason is missing"),
    ],
)
def test_run_with_a_bad_baseline_exits_2_before_running(tmp_path, text, message):
    done, _ = run(tmp_path, text)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.startswith("best-conformance: error: baseline ") and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "reports").exists()


def test_pytest_itself_takes_the_baseline(tmp_path):
    """A vendor's CI runs pytest directly: the expected failure xfails, so the session passes, and the
    terminal summary says what the baseline found."""
    (tmp_path / "baseline.yaml").write_text(EXPECTING_SC_002, encoding="utf-8")
    argv = ["--best-profile", str(ROOT / "profiles" / "reference-hse.yaml"), "--best-reference"]
    argv += ["--best-fault", "res_not_checked", "-k", SELECTION, "--best-reports", str(tmp_path / "reports")]
    argv += ["--best-baseline", str(tmp_path / "baseline.yaml"), "-p", "no:cacheprovider", "-o", "addopts="]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *argv], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout[-3000:]
    out = " ".join(done.stdout.split())
    assert "1 xfailed" in out and "FIXED HSE-SR-001: passes now" in out
    assert "baseline: 0 new, 1 unchanged, 1 fixed, 1 not run, 0 errors" in out
