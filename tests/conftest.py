import os

import pytest
from hypothesis import HealthCheck, settings

# CI runs a fixed, derandomised budget so a red run is reproducible; locally Hypothesis explores freely.
settings.register_profile(
    "ci", derandomize=True, max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(scope="session")
def run_folders(tmp_path_factory: pytest.TempPathFactory):
    """Real `best-conformance run` folders, made on first use (tests/runs.py)."""
    from tests.runs import RunFolders

    return RunFolders(tmp_path_factory)
