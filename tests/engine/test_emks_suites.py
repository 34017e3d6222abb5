"""The shipped EMKS suites (TR 33.863 Solution #10, seed 002), proved on the reference EMKS.

- They lint clean, every case cites its clauses and names only binding keys it rests on.
- Against the conformant embedded reference EMKS (one instance for the whole module) every applicable case
  passes.
- Every key-server fault of the catalogue is caught: EMKS_FAULT_CATCHERS names, per fault, cases that must
  not pass against a reference EMKS with only that fault on (fail for a `shall` case, warn for should/may).
- `best-conformance run --profile profiles/reference-emks.yaml --reference` exits 0.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conformance.binding import load_binding
from conformance.engine.lint import load_suite
from conformance.engine.model import suite_dir
from conformance.engine.results import Result, Verdict
from conformance.faults import CATALOGUE
from conformance.profile import load_profile
from conformance.selftest import EXPECTED_CATCHERS, kind_faults
from tests.engine import assert_fault_caught, explain, run_against_reference

ROOT = Path(__file__).resolve().parents[2]
PROFILE_FILE = ROOT / "profiles" / "reference-emks.yaml"
CASES, LINT = load_suite(suite_dir("emks").glob("*.yaml"))
BY_ID = {case.id: case for case in CASES}

# fault -> cases that must not pass with that fault on (shared with `best-conformance selftest`)
EMKS_FAULT_CATCHERS = EXPECTED_CATCHERS["emks"]


@pytest.fixture(scope="module")
def profile():
    return load_profile(PROFILE_FILE)


@pytest.fixture(scope="module")
def conformant_results(profile, tmp_path_factory) -> dict[str, Result]:
    """Every EMKS case, run once against one conformant embedded reference EMKS."""
    out = tmp_path_factory.mktemp("conformant-emks")
    return run_against_reference(profile, CASES, out)


# ---- the suites as data ---------------------------------------------------------------------------------


def test_emks_suites_lint_clean():
    assert LINT.errors == []


def test_there_are_at_least_30_emks_cases_and_all_are_for_the_emks():
    assert len(CASES) >= 30
    assert {case.sut for case in CASES} == {"emks"}
    assert len(BY_ID) == len(CASES)


def test_every_case_cites_seed_002_or_the_tls_profile_and_rests_on_binding_keys():
    binding = load_binding()
    for case in CASES:
        assert any(ref.startswith(("seed 002 6.x.2", "TS 33.210 6.2")) for ref in case.refs), case.id
        assert case.rests_on, f"{case.id} names no binding key its verdict rests on"
        for key in case.rests_on:
            binding.param(key)  # raises for a key the binding does not have


def test_the_profile_lists_runs_beyond_the_kept_number(profile):
    """EMKS-KEY-005/006 need AKA runs the EMKS no longer keeps."""
    assert len(profile.pixit.subscribers[0].rands) > profile.binding["rest.past_keys_kept"] + 1


def test_lint_knows_the_eas_actions_and_options(tmp_path):
    suite = tmp_path / "bad.yaml"
    suite.write_text(
        "- id: X-1\n  title: t\n  refs: ['seed 002 6.x.2.1']\n  level: shall\n  applies: {sut: emks}\n"
        "  steps:\n    - key_client: fetch_keys\n    - key_client: post_raw\n      with: {body: huge, colour: red}\n"
        "    - key_client: fetch_key\n      with: {key: {provisioned: 0, expect: found}}\n",
        encoding="utf-8",
    )
    _, report = load_suite([suite])
    text = "\n".join(report.errors)
    assert "key_client: unknown action 'fetch_keys'; did you mean 'fetch_key'?" in text
    assert "key_client: unknown option 'colour'" in text
    assert "key_client: option body: unknown post_raw body 'huge'" in text
    assert "key_client: option key.expect: must be 'unknown', got 'found'" in text


# ---- the conformant reference passes ------------------------------------------------------------------


@pytest.mark.parametrize("case_id", sorted(BY_ID))
def test_conformant_reference_emks_passes(conformant_results, case_id):
    result = conformant_results[case_id]
    assert result.verdict is Verdict.PASS, explain(result)


def test_best_conformance_run_on_the_reference_emks_exits_0(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance.cli",
            "run",
            "--profile",
            str(PROFILE_FILE),
            "--reference",
            "--reports",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{len(CASES)} cases: {len(CASES)} pass" in " ".join(done.stderr.split())


# ---- every fault is caught ----------------------------------------------------------------------------


def test_emks_fault_catchers_cover_every_key_server_fault():
    assert (
        set(EMKS_FAULT_CATCHERS)
        == set(kind_faults("emks"))
        == {f.name for f in CATALOGUE if f.component == "keyserver" and not f.found_by}  # found_by: fuzzing's
    )
    for fault, ids in EMKS_FAULT_CATCHERS.items():
        assert ids, fault
        assert set(ids) <= set(BY_ID), f"{fault}: unknown case(s) {sorted(set(ids) - set(BY_ID))}"


@pytest.mark.parametrize("fault", sorted(EMKS_FAULT_CATCHERS))
def test_emks_fault_is_caught(profile, tmp_path, fault):
    assert_fault_caught(profile, BY_ID, EMKS_FAULT_CATCHERS[fault], fault, tmp_path)
