"""compliance.json of real runs against the embedded reference EMKS: valid against its published schema, the
decision rule flips with a catalogued fault, evidence digests match the files, key logs follow the secrets rule."""

from __future__ import annotations

import copy
import datetime
import json
from collections import Counter

import pytest

from conformance.engine.results import read_results
from conformance.profile import load_profile
from conformance.report.compliance import (
    SCHEMA,
    ComplianceError,
    file_sha256,
    load_compliance,
    schema_problems,
    write_compliance,
)
from tests.runs import ROOT


def test_a_conformant_run_writes_a_schema_valid_record_whose_decision_is_pass(runs):
    run_dir = runs["emks"]
    doc = load_compliance(run_dir)  # validates against compliance.schema.json
    assert schema_problems(doc) == []
    assert doc["format"] == "best-conformance/compliance" and doc["format_version"] == 1
    assert doc["decision"]["outcome"] == "pass"
    assert doc["decision"]["failed_shall"] == doc["decision"]["errors"] == doc["decision"]["not_run"] == []
    assert doc["sut"]["kind"] == "emks" and doc["suite"]["cases"] == len(doc["cases"]) >= 30
    assert doc["run"] | {"started": None, "finished": None} == {
        "id": run_dir.name,
        "started": None,
        "finished": None,
        "reference": True,
        "faults": [],
        "secrets": "masked",
        "mode": "conformance",
    }
    assert doc["run"]["started"] <= doc["run"]["finished"]
    assert doc["totals"] == dict(Counter(c["verdict"] for c in doc["cases"]))
    assert doc["profile"]["file"].endswith("reference-emks.yaml")
    assert {b["basis"] for b in doc["binding"]} >= {"spec", "assumed"}
    results = {r["case"] for r in read_results(run_dir / "results.jsonl")}
    assert {c["id"] for c in doc["cases"]} == results


def test_every_evidence_file_exists_with_the_digest_the_record_gives(runs):
    run_dir = runs["emks"]
    doc = load_compliance(run_dir)
    kinds = Counter()
    for case in doc["cases"]:
        for item in case["evidence"]:
            kinds[item["kind"]] += 1
            assert file_sha256(run_dir / item["path"]) == item["sha256"], item
    assert kinds["pcap"] == len(doc["cases"])


def test_the_decision_flips_to_fail_with_a_fault_and_names_the_failed_shall_cases(runs):
    doc = load_compliance(runs["key_id_ignored"])
    decision = doc["decision"]
    assert decision["outcome"] == "fail"
    failed = {c["id"] for c in doc["cases"] if c["level"] == "shall" and c["verdict"] == "fail"}
    assert failed and set(decision["failed_shall"]) == failed
    assert "EMKS-KEY-007" in failed
    warned = {c["id"] for c in doc["cases"] if c["verdict"] == "warn"}
    assert warned and not warned & set(decision["failed_shall"]), "should/may cases do not decide"
    assert doc["run"]["faults"] == ["key_id_ignored"]
    bad = next(c for c in doc["cases"] if c["id"] == "EMKS-KEY-007")
    assert bad["reason"] and bad["failed_step"] and bad["binding_dependent"]


def test_a_partial_run_does_not_pass_and_says_which_shall_cases_it_left_out(runs):
    doc = load_compliance(runs["one_case"])
    assert [c["id"] for c in doc["cases"]] == ["EMKS-REG-001"] and doc["cases"][0]["verdict"] == "pass"
    assert doc["decision"]["outcome"] == "fail"
    assert "EMKS-KEY-007" in doc["decision"]["not_run"] and "EMKS-REG-001" not in doc["decision"]["not_run"]


@pytest.mark.parametrize(
    "where, change, named",
    [
        (("cases", 0, "verdict"), "passed", "cases/0/verdict"),
        (("decision", "outcome"), "maybe", "decision/outcome"),
        (("format_version",), 2, "format_version"),
        (("cases", 0, "evidence", 0, "path"), "/etc/passwd", "cases/0/evidence/0/path"),
        (("run", "started"), "yesterday", "run/started"),
    ],
)
def test_the_schema_refuses_a_wrong_value_and_names_where(runs, where, change, named):
    doc = copy.deepcopy(load_compliance(runs["emks"]))
    holder = doc
    for part in where[:-1]:
        holder = holder[part]
    holder[where[-1]] = change
    problems = schema_problems(doc)
    assert problems and problems[0].startswith(named + ":"), problems


def test_the_schema_refuses_a_missing_or_unknown_field(runs):
    doc = copy.deepcopy(load_compliance(runs["emks"]))
    del doc["decision"]
    doc["extra"] = 1
    problems = " ".join(schema_problems(doc))
    assert "'decision' is a required property" in problems and "'extra' was unexpected" in problems


def test_the_schema_is_published_json_schema_2020_12():
    schema = json.loads(SCHEMA.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(schema)


def test_load_compliance_says_what_is_wrong_in_one_line(tmp_path):
    with pytest.raises(ComplianceError, match=r"compliance\.json: missing"):
        load_compliance(tmp_path)
    (tmp_path / "compliance.json").write_text("{not json")
    with pytest.raises(ComplianceError, match="not readable as JSON"):
        load_compliance(tmp_path)
    (tmp_path / "compliance.json").write_text('{"format": "x"}')
    with pytest.raises(ComplianceError, match=r"does not match compliance.schema.json: \(top\): .* \(and \d+ more\)"):
        load_compliance(tmp_path)


def _rewrite(run_dir, *, reveal):
    profile = load_profile(ROOT / "profiles" / "reference-emks.yaml")
    now = datetime.datetime.now(datetime.UTC)
    write_compliance(run_dir, profile, started=now, finished=now, reference=True, faults=[], reveal_secrets=reveal)
    return load_compliance(run_dir)


def test_a_masked_run_withholds_key_logs_and_a_revealed_one_keeps_them(runs):
    """A DTLS key log decrypts its session: in a masked EMSE run only its digest stays in the record; with
    --reveal-secrets the file is there, as the record's digest says."""
    for name, reveal in (("emse", False), ("emse_revealed", True)):
        run_dir = runs[name]
        doc = load_compliance(run_dir)
        case = next(c for c in doc["cases"] if c["id"] == "EMSE-KEY-001")
        (item,) = [e for e in case["evidence"] if e["kind"] == "keylog"]
        keylog = run_dir / item["path"]
        assert item["path"] == "keylogs/EMSE-KEY-001.keys"
        assert item.get("withheld", False) is not reveal
        assert keylog.exists() is reveal
        if reveal:
            assert file_sha256(keylog) == item["sha256"]
            assert keylog.read_text().startswith("CLIENT_RANDOM ")
        assert doc["run"]["secrets"] == ("revealed" if reveal else "masked")


def test_each_requirement_carries_the_worst_verdict_of_its_cases(runs):
    """Under key_id_ignored the requirement behind the failing key-id cases fails; untested ones say so."""
    doc = load_compliance(runs["key_id_ignored"])
    verdicts = {c["id"]: c["verdict"] for c in doc["cases"]}
    assert doc["requirements"], "the shipped ledger has requirements for the EMKS"
    order = ("error", "fail", "inconclusive", "warn", "pass", "not applicable", "skipped")
    for req in doc["requirements"]:
        ran = [verdicts[c] for c in req["cases"] if c in verdicts]
        assert req["verdict"] == (min(ran, key=order.index) if ran else None), req
        assert (req["status"] == "untested") == (not req["cases"] or bool(req["untested"])), req
        for case in req["cases"]:
            assert req["id"] in next(c for c in doc["cases"] if c["id"] == case)["requirements"]
    failed = {r["id"] for r in doc["requirements"] if r["verdict"] == "fail"}
    cited = {rid for c in doc["cases"] if c["id"] == "EMKS-KEY-007" for rid in c["requirements"]}
    assert cited and cited <= failed
