"""The shipped HSE suites, proved on the reference HSE.

- They lint clean, every case cites its clauses and names only binding keys it rests on.
- Against the conformant embedded reference HSE (one instance for the whole module) every applicable case
  passes.
- Every fault the reference HSE serves (hse and keyserver) is caught: FAULT_CATCHERS names, per fault, cases
  that must not pass against a reference with only that fault on. A failing `shall` case gives the verdict
  fail; a failing `should`/`may` case gives warn, the verdict the runner gives such a case (some faults break
  only a binding policy, e.g. rejecting unknown commands, whose cases are `should`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conformance.binding import load_binding
from conformance.engine.lint import load_suite
from conformance.engine.model import suite_dir
from conformance.engine.results import Result, Verdict
from conformance.profile import load_profile
from conformance.selftest import EXPECTED_CATCHERS, kind_faults
from tests.engine import assert_fault_caught, explain, run_against_reference

ROOT = Path(__file__).resolve().parents[2]
PROFILE_FILE = ROOT / "profiles" / "reference-hse.yaml"
CASES, LINT = load_suite(suite_dir("hse").glob("*.yaml"))
BY_ID = {case.id: case for case in CASES}

# Not applicable for a reason other than the PICS: the case needs a binding the default one is not.
# cases the default binding gives nothing to test: "not run", naming the binding value (never "not applicable",
# which comes from the PICS only)
BINDING_NOT_RUN = {"HSE-MF-004": "no version field"}

# fault -> cases that must not pass with that fault on (shared with `best-conformance selftest`)
FAULT_CATCHERS = EXPECTED_CATCHERS["hse"]


@pytest.fixture(scope="module")
def profile():
    return load_profile(PROFILE_FILE)


@pytest.fixture(scope="module")
def conformant_results(profile, tmp_path_factory) -> dict[str, Result]:
    """Every HSE case, run once against one conformant embedded reference HSE."""
    out = tmp_path_factory.mktemp("conformant")
    return run_against_reference(profile, CASES, out)


# ---- the suites as data ---------------------------------------------------------------------------------


def test_hse_suites_lint_clean():
    assert LINT.errors == []


def test_case_ids_are_unique():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_there_are_at_least_60_hse_cases_and_all_are_for_the_hse():
    assert len(CASES) >= 60
    assert {case.sut for case in CASES} == {"hse"}


def test_every_case_cites_a_clause_and_says_what_it_is():
    for case in CASES:
        assert case.refs, case.id
        assert case.title and case.level in ("shall", "should", "may"), case.id


def test_every_case_rests_on_binding_keys_that_exist():
    binding = load_binding()
    for case in CASES:
        assert case.rests_on, f"{case.id} names no binding key its verdict rests on"
        for key in case.rests_on:
            binding.param(key)  # raises for a key the binding does not have


def test_negative_cases_name_the_cause_of_the_reject_they_expect():
    """The linter makes every negative case expect a reaction (a reject, silence or an HTTP status); a case
    that expects a Message Reject also says with which cause."""
    for case in (c for c in CASES if c.negative):
        rejects = [s for s in case.steps if s.verb == "expect" and s.args["_value"] == "message_reject"]
        if rejects:
            assert any("cause" in (s.args.get("check") or {}) for s in rejects), case.id


# ---- the conformant reference passes ------------------------------------------------------------------


@pytest.mark.parametrize("case_id", sorted(BY_ID))
def test_conformant_reference_passes(conformant_results, case_id):
    result = conformant_results[case_id]
    if result.verdict is Verdict.NOT_APPLICABLE:
        assert result.reason.startswith("PICS:"), explain(result)
    elif result.verdict is Verdict.NOT_RUN:
        assert BINDING_NOT_RUN.get(case_id, "\0") in result.reason, explain(result)
    else:
        assert result.verdict is Verdict.PASS, explain(result)


def test_the_version_case_passes_where_the_binding_has_a_version_field(tmp_path):
    """HSE-MF-004 has nothing to test under the default binding (not run): run it where a version field exists."""
    data = yaml.safe_load(PROFILE_FILE.read_text(encoding="utf-8"))
    data["binding"] = {
        "emsdp.header.version_bits": 8,
        "emsdp.header.fields": ["version", "up_cp", "rfu", "key_id", "counter", "session_id"],
    }
    cases = (BY_ID[i] for i in ("HSE-MF-004", "HSE-SR-001"))
    results = list(run_against_reference(load_profile(data), cases, tmp_path).values())
    assert [r.verdict for r in results] == [Verdict.PASS, Verdict.PASS], [explain(r) for r in results]


# ---- every fault is caught ----------------------------------------------------------------------------


def test_fault_catchers_cover_every_fault_the_reference_hse_serves():
    assert set(FAULT_CATCHERS) == set(kind_faults("hse"))
    for fault, ids in FAULT_CATCHERS.items():
        assert ids, fault
        assert set(ids) <= set(BY_ID), f"{fault}: unknown case(s) {sorted(set(ids) - set(BY_ID))}"


@pytest.mark.parametrize("fault", sorted(FAULT_CATCHERS))
def test_fault_is_caught(profile, tmp_path, fault):
    assert_fault_caught(profile, BY_ID, FAULT_CATCHERS[fault], fault, tmp_path)


# ---- caught whatever the SUT claims, wherever the behaviour shows ---------------------------------------------

# PICS a SUT may leave out -> (the PICS items it changes, {fault: the cases that still catch it}). A fault is listed
# under every variant in which its behaviour can still be seen on the wire; a fault seen only through what a
# variant leaves out (e.g. a replayed Manage Keys message without Manage Keys) is not.
WITHOUT_MANAGE_KEYS = {"manage_keys_from_ue": False, "manage_keys_from_hse": False}
WITHOUT_UE_TO_HSE = {"modes": ["ue_to_eas"]}
PICS_VARIANTS: dict[str, tuple[dict[str, object], dict[str, list[str]]]] = {
    "no Manage Keys": (
        WITHOUT_MANAGE_KEYS,
        {
            "static_rand": ["HSE-SS-014"],
            "serves_terminated_session": ["HSE-TE-006", "HSE-TE-007"],
            "answers_unknown_subscriber": ["HSE-SR-015"],
            "key_id_reused": ["HSE-EAS-014"],
        },
    ),
    "no UE-to-HSE user plane": (
        WITHOUT_UE_TO_HSE,
        {
            "cp_replay_accepted": ["HSE-CT-011"],
            "static_rand": ["HSE-SS-014", "HSE-MK-001"],
            "serves_terminated_session": ["HSE-TE-007", "HSE-TE-008"],
            "key_id_reused": ["HSE-EAS-014"],
        },
    ),
    "neither": (
        WITHOUT_MANAGE_KEYS | WITHOUT_UE_TO_HSE,
        {"static_rand": ["HSE-SS-014"], "serves_terminated_session": ["HSE-TE-007"]},
    ),
}


@pytest.mark.parametrize(
    ("variant", "fault"), [(v, f) for v, (_, faults) in PICS_VARIANTS.items() for f in sorted(faults)]
)
def test_fault_is_caught_without_optional_pics(tmp_path, variant, fault):
    """E.g. a static RAND with Manage Keys off in the PICS: the base suite's consecutive sessions catch it."""
    pics, faults = PICS_VARIANTS[variant]
    data = yaml.safe_load(PROFILE_FILE.read_text(encoding="utf-8"))
    data["pics"] = {**data["pics"], **pics}
    assert_fault_caught(load_profile(data), BY_ID, faults[fault], fault, tmp_path)


@pytest.mark.parametrize("variant", sorted(PICS_VARIANTS))
def test_the_conformant_reference_passes_the_catchers_without_optional_pics(tmp_path, variant):
    pics, faults = PICS_VARIANTS[variant]
    data = yaml.safe_load(PROFILE_FILE.read_text(encoding="utf-8"))
    data["pics"] = {**data["pics"], **pics}
    ids = sorted({i for catchers in faults.values() for i in catchers})
    results = run_against_reference(load_profile(data), (BY_ID[i] for i in ids), tmp_path)
    assert all(r.verdict is Verdict.PASS for r in results.values()), [explain(r) for r in results.values()]


def test_the_pics_variants_leave_their_cases_applicable_and_the_rest_out(tmp_path):
    """The variants do switch off what they claim to: the Manage Keys and user-plane catchers do not apply."""
    data = yaml.safe_load(PROFILE_FILE.read_text(encoding="utf-8"))
    data["pics"] = {**data["pics"], **WITHOUT_MANAGE_KEYS, **WITHOUT_UE_TO_HSE}
    cases = (BY_ID[i] for i in ("HSE-CT-002", "HSE-CT-011", "HSE-TE-006", "HSE-TE-007"))
    verdicts = {i: r.verdict for i, r in run_against_reference(load_profile(data), cases, tmp_path).items()}
    assert verdicts == {
        "HSE-CT-002": Verdict.NOT_APPLICABLE,
        "HSE-CT-011": Verdict.NOT_APPLICABLE,
        "HSE-TE-006": Verdict.NOT_APPLICABLE,
        "HSE-TE-007": Verdict.PASS,
    }
