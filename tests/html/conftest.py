"""Run folders for the report tests (tests/runs.py), read through their compliance record."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.report.compliance import load_compliance
from tests.runs import RunFolders


class Run:
    def __init__(self, folder: Path):
        self.dir = folder
        self.doc = load_compliance(folder / "compliance.json")
        self.report = folder / "report.html"

    def case(self, case_id: str) -> dict:
        return next(c for c in self.doc["cases"] if c["id"] == case_id)


class Runs:
    """The shared run folders (tests/runs.py), each read as a Run."""

    def __init__(self, folders: RunFolders):
        self._folders = folders

    def __getitem__(self, name: str) -> Run:
        return Run(self._folders[name])


@pytest.fixture(scope="session")
def runs(run_folders: RunFolders) -> Runs:
    return Runs(run_folders)
