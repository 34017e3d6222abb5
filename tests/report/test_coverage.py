"""Cases against the ledger: the linter refuses ids the ledger does not know, every shipped case names known
ids, the coverage computed from the cases adds up, `best-conformance coverage` prints it, and results carry
the ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.cli import main
from conformance.engine import lint
from conformance.engine.lint import load_suite
from conformance.engine.results import ResultsFile, Verdict, read_results
from conformance.engine.runner import run_case
from conformance.profile import load_profile
from conformance.report.coverage import compute, shipped_cases
from conformance.requirements import REASONS, load_ledger, shipped_ledger
from conformance.requirements.ledger import SUT_KINDS

ROOT = Path(__file__).resolve().parents[2]
CASE = """
- id: X-1
  title: a case
  refs: ["TS 33.163 6.2.2"]
  requirements: {ids}
  level: shall
  applies: {{sut: {sut}}}
  steps:
    - send: session_request
"""


def lint_errors(tmp_path, ids, sut="hse"):
    path = tmp_path / "cases.yaml"
    path.write_text(CASE.format(ids=ids, sut=sut), encoding="utf-8")
    _, report = load_suite([path])
    return path, report.errors


def test_lint_refuses_an_unknown_id_with_file_line_and_a_suggestion(tmp_path):
    path, errors = lint_errors(tmp_path, "[BEST-HDR-001, BEST-HDR-01]")
    assert errors == [f"{path}:2: case X-1: unknown requirement 'BEST-HDR-01'; did you mean BEST-HDR-001?"]


def test_lint_refuses_a_requirement_of_another_sut_kind(tmp_path):
    path, errors = lint_errors(tmp_path, "[SOL10-EMKS-001]")
    assert len(errors) == 1 and errors[0].startswith(f"{path}:2: case X-1: requirement SOL10-EMKS-001 concerns emks")


def test_rule_requirements_mandatory(tmp_path, monkeypatch):
    path, errors = lint_errors(tmp_path, "[]")
    assert errors == [
        f"{path}:2: case X-1: requirements must name at least one requirement id of the ledger "
        "(conformance/requirements/*.yaml)"
    ]
    monkeypatch.setattr(lint, "REQUIREMENTS_MANDATORY", False)  # while a new suite is being mapped
    assert lint_errors(tmp_path, "[]")[1] == []
    assert "unknown requirement" in lint_errors(tmp_path, "[NOPE-001]")[1][0]  # unknown ids are refused still


def test_every_shipped_case_names_known_requirements_of_its_sut_kind():
    cases = shipped_cases()  # raises if any suite does not lint clean (unknown ids among its errors)
    ledger = shipped_ledger()
    assert len(cases) >= 132
    for case in cases:
        assert case.requirements, case.id
        for rid in case.requirements:
            assert case.sut in ledger[rid].sut, (case.id, rid)


@pytest.fixture(scope="module")
def cases():
    return shipped_cases()


@pytest.mark.parametrize("sut", [None, *SUT_KINDS])
def test_coverage_totals_add_up(cases, sut):
    coverage = compute(cases, sut)
    totals = coverage.totals()
    rows = coverage.rows
    assert totals["requirements"] == len(rows) == totals["tested"] + totals["untested"]
    assert sum(totals["untested_by_reason"].values()) == totals["untested"]
    assert set(totals["untested_by_reason"]) <= set(REASONS)
    assert (
        totals["shall_tested"] == totals["by_level"]["shall"]["tested"] <= totals["by_level"]["shall"]["requirements"]
    )
    assert sum(level["requirements"] for level in totals["by_level"].values()) == len(rows)
    by_id = {case.id: case for case in cases}
    for row in rows:
        assert sut is None or sut in row.requirement.sut
        for case_id in row.cases:  # tested by exactly the cases that name it
            assert row.requirement.id in by_id[case_id].requirements and (sut is None or by_id[case_id].sut == sut)
        if not row.tested:
            assert row.reason in REASONS and row.note, row.requirement.id


def test_every_requirement_is_tested_or_says_why(cases):
    """No silent hole: a requirement no shipped case checks carries its own reason in the ledger."""
    untold = [row.requirement.id for row in compute(cases).rows if not row.tested and row.requirement.untested is None]
    assert untold == []


def test_no_stored_reason_outlives_its_cases(cases):
    """An `untested:` entry claims no case checks the requirement; once a case does, delete the entry."""
    assert compute(cases).stale == ()


def test_coverage_of_a_small_ledger(tmp_path):
    """The computation itself, on a ledger and cases made up for it."""
    path = tmp_path / "mini.yaml"
    path.write_text(
        """
source: {title: mini}
requirements:
  - {id: M-A-001, clause: TS 33.163 6.2.2, level: shall, sut: [hse, emks], text: a}
  - {id: M-B-001, clause: TS 33.163 6.2.2, level: should, sut: [hse], text: b,
     untested: {reason: needs_pics, note: why}}
  - {id: M-C-001, clause: TS 33.163 6.2.2, level: may, sut: [emks], text: c,
     untested: {reason: not_covered, note: stale}}
""",
        encoding="utf-8",
    )
    ledger = load_ledger([path])
    from dataclasses import replace

    template = shipped_cases()[0]
    made = [
        replace(template, id="K-1", sut="hse", requirements=("M-A-001",), rests_on=("tls.min_version",)),
        replace(template, id="K-2", sut="emks", requirements=("M-A-001", "M-C-001"), rests_on=("rest.paths.register",)),
    ]
    everything = compute(made, ledger=ledger)
    assert [(r.requirement.id, r.cases, r.reason) for r in everything.rows] == [
        ("M-A-001", ("K-1", "K-2"), None),
        ("M-B-001", (), "needs_pics"),
        ("M-C-001", ("K-2",), None),
    ]
    assert not everything.rows[0].binding_dependent  # K-1 rests only on a value a spec clause confirms
    assert everything.stale == ("M-C-001",)
    assert everything.totals()["untested_by_reason"] == {"needs_pics": 1}
    hse = compute(made[1:], "hse", ledger=ledger)  # an HSE view with only the EMKS case
    assert hse.rows[0].reason == "not_covered" and "cases for emks do" in hse.rows[0].note
    emks = compute(made, "emks", ledger=ledger)
    assert [r.requirement.id for r in emks.rows] == ["M-A-001", "M-C-001"] and emks.rows[0].binding_dependent


def run_cli(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_coverage_command_json(capsys, cases):
    code, out, err = run_cli(capsys, "coverage", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc) == {"sut", "totals", "requirements", "stale_untested"} and doc["sut"] is None
    assert doc["totals"] == compute(cases).totals()
    assert set(doc["totals"]) >= {"requirements", "tested", "untested", "untested_by_reason", "shall_tested"}
    row = next(r for r in doc["requirements"] if r["id"] == "BEST-CNT-003")
    assert row["status"] == "tested" and row["cases"] == ["HSE-CT-005"] and row["reason"] is None
    row = next(r for r in doc["requirements"] if r["id"] == "BEST-TR-002")
    assert row["status"] == "untested" and row["reason"] == "out_of_scope" and row["note"]
    assert set(row) == {"id", "source", "clause", "level", "sut", "text", "status", "cases", "reason", "note"} | {
        "binding_dependent"
    }


def test_coverage_command_table_for_one_sut_kind(capsys):
    code, out, err = run_cli(capsys, "coverage", "--sut", "emks")
    assert code == 0, err
    assert "SOL10-EMKS-001" in out and "BEST-HDR-001" not in out
    assert "requirements:" in out and "tested" in out and "shall:" in out


def test_results_carry_the_requirement_ids(tmp_path):
    profile = load_profile(ROOT / "profiles" / "reference-hse.yaml")
    case = next(c for c in shipped_cases() if c.sut == "emks")  # not applicable to an HSE: no network needed
    result = run_case(case, profile, tmp_path)
    assert result.verdict is Verdict.NOT_APPLICABLE and result.requirements == list(case.requirements)
    results = ResultsFile(tmp_path / "results.jsonl")
    results.append(result)
    assert read_results(results.path)[0]["requirements"] == list(case.requirements)
