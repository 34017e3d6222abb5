"""Run folders for the compliance, secrets and signing tests (tests/runs.py), copied by tests that alter them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.runs import RunFolders


@pytest.fixture(scope="session")
def runs(run_folders: RunFolders) -> RunFolders:
    return run_folders


@pytest.fixture
def run_copy(runs, tmp_path):
    """A fresh copy of a run folder, to alter."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(runs[name], target)
        return target

    return copy
