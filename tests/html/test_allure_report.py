"""`best-conformance report RUN_DIR --allure`: Allure 3 (npm) renders allure-results when it is installed; when
it is not, one line says how to get it and the main report is still written (exit 0)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conformance.report.allure_report import allure_command
from tests.runs import EXE


def real_allure() -> str | None:
    found = shutil.which("allure")
    if found is None:
        return None
    done = subprocess.run(
        [found, "--version"], capture_output=True, text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"}
    )
    return found if done.stdout.strip().startswith("3.") else None


def report(run_dir: Path, path: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path}
    return subprocess.run(
        [EXE, "report", str(run_dir), "--allure"], capture_output=True, text=True, timeout=300, env=env, cwd=cwd
    )


def copy_run(runs, tmp_path) -> Path:
    return Path(shutil.copytree(runs["emks"].dir, tmp_path / "run"))


def fake_allure(folder: Path, script: str) -> str:
    """An `allure` command standing in for the npm one (not the thing under test: our handling of its answers)."""
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "allure"
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(0o755)
    return str(folder)


def test_the_command_renders_one_self_contained_awesome_report(tmp_path):
    results, out = tmp_path / "allure-results", tmp_path / "allure-report"
    assert allure_command("/usr/bin/allure", results, out, "BEST run 1") == [
        "/usr/bin/allure",
        "awesome",
        str(results),
        "--output",
        str(out),
        "--single-file",
        "--report-name",
        "BEST run 1",
    ]


def test_without_allure_one_line_says_how_to_get_it_and_the_report_is_written(runs, tmp_path):
    run_dir = copy_run(runs, tmp_path)
    (run_dir / "report.html").unlink()
    done = report(run_dir, str(tmp_path / "empty-bin"), tmp_path)
    assert done.returncode == 0, done.stderr
    assert (run_dir / "report.html").is_file() and not (run_dir / "allure-report").exists()
    assert done.stderr.strip() == (
        "Allure report skipped: Node.js and Allure 3 are not installed; get it with `npm install -g allure@3` "
        "(the npm package allure, which needs Node.js)"
    )


def test_allure_2_is_not_taken_for_allure_3(runs, tmp_path):
    bin_dir = fake_allure(tmp_path / "bin", 'echo "2.30.0"\n')
    done = report(copy_run(runs, tmp_path), bin_dir, tmp_path)
    assert done.returncode == 0 and "is not Allure 3 (it says '2.30.0')" in done.stderr
    assert "npm install -g allure@3" in done.stderr


def test_an_allure_that_fails_is_exit_3_with_its_last_words(runs, tmp_path):
    bin_dir = fake_allure(
        tmp_path / "bin", '[ "$1" = --version ] && { echo 3.18.0; exit 0; }\necho "no results" >&2\nexit 1\n'
    )
    done = report(copy_run(runs, tmp_path), bin_dir, tmp_path)
    assert done.returncode == 3 and done.stderr.strip() == "Allure report failed: no results"


def test_a_project_local_npm_install_is_found(runs, tmp_path):
    """`npm install allure` puts it in ./node_modules/.bin, not on PATH."""
    fake_allure(tmp_path / "node_modules" / ".bin", 'echo "2.1.0"\n')
    done = report(copy_run(runs, tmp_path), str(tmp_path / "empty-bin"), tmp_path)
    assert str(tmp_path / "node_modules" / ".bin" / "allure") in done.stderr


@pytest.mark.skipif(real_allure() is None, reason="Allure 3 not installed (npm install -g allure@3; .ci/run does it)")
def test_allure_3_renders_the_runs_results(runs, tmp_path):
    run_dir = copy_run(runs, tmp_path)
    done = report(run_dir, os.environ["PATH"], tmp_path)
    assert done.returncode == 0, done.stderr
    index = run_dir / "allure-report" / "index.html"
    assert done.stdout.splitlines()[-1] == f"Allure report: {index}"
    assert index.stat().st_size > 10_000
    summary = json.loads((run_dir / "allure-report" / "summary.json").read_text())
    assert summary["stats"]["total"] == len(runs["emks"].doc["cases"])
    assert summary["stats"].get("passed") == runs["emks"].doc["totals"]["pass"]
