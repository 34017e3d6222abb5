"""`best-conformance load` as the tests run it: the command as its own process, its run folder and load.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "profiles"
EXE = str(Path(sys.executable).with_name("best-conformance"))


def load(reports: Path, *args: str, timeout: float = 120) -> tuple[int, str, Path | None]:
    """`best-conformance load ARGS` as a command: (exit code, stderr, the run folder)."""
    done = subprocess.run(
        [EXE, "load", "--reports", str(reports), *args], capture_output=True, text=True, timeout=timeout
    )
    folders = sorted(reports.glob("load-*"))
    return done.returncode, done.stderr, folders[-1] if folders else None


def summary(folder: Path | None, err: str = "") -> dict[str, Any]:
    """The run folder's load.json (`err`, the command's stderr, says why when there is none)."""
    assert folder is not None and (folder / "load.json").is_file(), err
    return json.loads((folder / "load.json").read_text(encoding="utf-8"))
