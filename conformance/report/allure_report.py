"""RUN_DIR/allure-report/: the run's allure-results rendered by Allure 3 (the npm package `allure`), if present.

Allure is a Node.js tool, so it is optional: the harness looks for an `allure` command (on PATH, or in
./node_modules/.bin after a local `npm install allure`), checks it is Allure 3 (Allure 2, the Java tool, has
no `awesome` report), and otherwise says in one line how to get it. It never downloads anything itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "get it with `npm install -g allure@3` (the npm package allure, which needs Node.js)"
TIMEOUT = 300  # s


@dataclass(frozen=True)
class AllureOutcome:
    ok: bool  # False: allure was found but failed; True with report None: allure is absent (not an error)
    message: str
    report: Path | None = None


def find_allure() -> str | None:
    """The allure command: on PATH, else ./node_modules/.bin/allure (a project-local npm install)."""
    local = Path.cwd() / "node_modules" / ".bin" / "allure"
    return shutil.which("allure") or (str(local) if local.is_file() and os.access(local, os.X_OK) else None)


def allure_command(allure: str, results: Path, out: Path, name: str) -> list[str]:
    """One self-contained HTML file (Allure Awesome, --single-file) from the run's allure-results."""
    return [allure, "awesome", str(results), "--output", str(out), "--single-file", "--report-name", name]


def render_allure(run_dir: Path, name: str) -> AllureOutcome:
    results = run_dir / "allure-results"
    if not results.is_dir():
        return AllureOutcome(True, f"Allure report skipped: {results} does not exist (the run wrote no Allure results)")
    allure = find_allure()
    if allure is None:
        if shutil.which("node") is None:
            return AllureOutcome(True, f"Allure report skipped: Node.js and Allure 3 are not installed; {INSTALL_HINT}")
        return AllureOutcome(True, f"Allure report skipped: Allure 3 is not installed; {INSTALL_HINT}")
    env = {**os.environ, "NO_COLOR": "1"}
    version = _run([allure, "--version"], env, 30)
    if version.returncode != 0 or not version.stdout.strip().startswith("3."):
        found = (version.stdout.strip() or version.stderr.strip() or "?").splitlines()[-1]
        return AllureOutcome(
            True, f"Allure report skipped: {allure} is not Allure 3 (it says {found!r}); {INSTALL_HINT}"
        )
    out = run_dir / "allure-report"
    done = _run(allure_command(allure, results, out, name), env, TIMEOUT)
    if done.returncode != 0 or not (out / "index.html").is_file():
        tail = (done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}").splitlines()[-1]
        return AllureOutcome(False, f"Allure report failed: {tail}")
    return AllureOutcome(True, f"Allure report: {out / 'index.html'}", out / "index.html")


def _run(command: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(command, 127, "", f"{command[0]}: {exc}")
