"""Real run folders for the tests of what a run writes (compliance record, signature, HTML report, matrix):
`best-conformance run` against the embedded reference SUTs, each made the first time a test asks for it and
shared by the whole session. Tests that alter a folder copy it first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("best-conformance"))
EMKS = ["--profile", str(ROOT / "profiles" / "reference-emks.yaml"), "--reference"]
RUNS = {  # name: arguments of `best-conformance run`
    "emks": EMKS,
    "emks_fault": [*EMKS, "--fault", "wrong_register_status"],
    "key_id_ignored": [*EMKS, "--fault", "key_id_ignored"],
    "key_id_ignored_revealed": [*EMKS, "--fault", "key_id_ignored", "--reveal-secrets"],
    "one_case": [*EMKS, "-k", "EMKS-REG-001"],
    # a corrupted MAC-A: fail, warn and inconclusive verdicts; some cases reject, so the ladders vary
    "hse_fault": ["-k", "SR-00 or MF-00 or RJ-00 or SS-00", "--fault", "bad_autn_mac"],
    # DTLS datagrams with the UE, and the key requests the EMSE makes to the harness's key server
    "emse": ["--profile", str(ROOT / "profiles" / "reference-emse.yaml"), "--reference", "-k", "KEY-00"],
    "emse_revealed": [
        *("--profile", str(ROOT / "profiles" / "reference-emse.yaml"), "--reference", "-k", "KEY-001"),
        "--reveal-secrets",
    ],
}


class RunFolders:
    def __init__(self, base: pytest.TempPathFactory):
        self._base, self._done = base, {}

    def __getitem__(self, name: str) -> Path:
        if name not in self._done:
            reports = self._base.mktemp(name)
            done = subprocess.run(
                [EXE, "run", "--reports", str(reports), *RUNS[name]],
                capture_output=True,
                text=True,
                timeout=300,
                cwd=reports,
            )
            assert done.returncode in (0, 1), f"{name}: exit {done.returncode}\n{done.stderr[-3000:]}"
            (folder,) = [p for p in reports.iterdir() if p.is_dir()]
            self._done[name] = folder
        return self._done[name]
