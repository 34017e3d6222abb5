"""A fuzz campaign writes a normal run folder (conformance/fuzz/campaign.py): each finding replayed as its case
(results.jsonl, pcaps/), compliance.json with its robustness section and the ledger's robustness requirement,
report.html showing it; `best-conformance fuzz` on the way a user types it, and the pytest option --best-fuzz
adding robustness to a conformance run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.reference.process import ServedReference
from conformance.report.compliance import file_sha256, schema_problems

ROOT = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).with_name("best-conformance"))
SKIPPED_MAC = "hse_skips_mac_on_terminate_after_manage_keys"


def fuzz(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    done = subprocess.run(
        [EXE, "fuzz", "--reports", str(tmp_path), *args], capture_output=True, text=True, timeout=240, cwd=tmp_path
    )
    (folder,) = tmp_path.glob("fuzz-*")
    return done, folder


def compliance(folder: Path) -> dict:
    doc = json.loads((folder / "compliance.json").read_text(encoding="utf-8"))
    assert schema_problems(doc) == []
    return doc


def requirement(doc: dict, rid: str) -> dict:
    return next(r for r in doc["requirements"] if r["id"] == rid)


@pytest.mark.slow  # a whole fuzz run with shrinking: 25 to 50 s
def test_a_finding_makes_the_campaign_fail_with_its_case_evidence_and_requirement(tmp_path):
    done, folder = fuzz(tmp_path, "--fault", SKIPPED_MAC, "--seed", "0")
    assert done.returncode == 1, done.stderr[-2000:]
    assert "1 finding(s)" in done.stderr and "corrupt MAC" in done.stderr
    doc = compliance(folder)
    assert doc["run"]["mode"] == "fuzz" and doc["run"]["faults"] == [SKIPPED_MAC]
    assert doc["decision"]["outcome"] == "fail" and doc["decision"]["reason"] == "1 finding(s) on emsdp"
    (entry,) = doc["robustness"]
    assert entry["interface"] == "emsdp" and entry["requirement"] == "POL-ROB-003" and entry["verdict"] == "warn"
    assert entry["seed"] == 0 and entry["examples"] >= entry["found_after"]["examples"] > 0
    (finding,) = entry["findings"]
    assert finding["case"] == "FUZZ-EMSDP-001" and finding["oracle"] == "no_action_on_forged"
    for ref in (finding["file"], finding["evidence"]):  # the case file and its pcap, as signed
        assert file_sha256(folder / ref["path"]) == ref["sha256"]
    # the finding replayed once as its case: a result like any case's (should level: warn), with the same pcap
    (case,) = doc["cases"]
    assert case["id"] == "FUZZ-EMSDP-001" and case["verdict"] == "warn"
    assert any(e["path"] == finding["evidence"]["path"] for e in case["evidence"])
    req = requirement(doc, "POL-ROB-003")
    assert req["status"] == "tested" and req["verdict"] == "warn" and req["cases"] == ["FUZZ-EMSDP-001"]
    assert requirement(doc, "POL-REST-006")["status"] == "untested"  # the key server was not fuzzed
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert 'id="robustness"' in page and 'data-interface="emsdp" data-verdict="warn"' in page
    assert 'href="findings/emsdp-1.yaml"' in page and (folder / "hypothesis-db" / "emsdp").is_dir()
    # the vendor's replay: the written case warns against the faulty reference and passes on the conformant one
    base = [EXE, "run", "--case-file", str(folder / finding["file"]["path"]), "--reports", str(tmp_path / "replays")]
    faulty = subprocess.run([*base, "--fault", SKIPPED_MAC], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert "1 case: 1 warn" in faulty.stderr, faulty.stderr
    conformant = subprocess.run(base, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert "1 case: 1 pass" in conformant.stderr, conformant.stderr


def test_no_finding_passes_the_campaign_and_tests_the_requirement(tmp_path):
    done, folder = fuzz(tmp_path, "--examples", "20")
    assert done.returncode == 0, done.stderr[-2000:]
    doc = compliance(folder)
    assert doc["decision"]["outcome"] == "pass" and doc["decision"]["reason"].startswith("no finding in ")
    assert doc["cases"] == [] and doc["robustness"][0]["verdict"] == "pass"
    assert requirement(doc, "POL-ROB-003") | {"text": None} == requirement(doc, "POL-ROB-003") | {
        "status": "tested",
        "verdict": "pass",
        "untested": None,
        "text": None,
    }


def test_a_sut_that_does_not_serve_is_not_fuzzed_and_not_charged(tmp_path):
    profile = tmp_path / "dead.yaml"
    text = (ROOT / "profiles" / "reference-hse.yaml").read_text(encoding="utf-8")
    profile.write_text(text.replace("hse: {host: 127.0.0.1}", "hse: {host: 127.0.0.1, port: 9}"), encoding="utf-8")
    done, folder = fuzz(tmp_path, "--profile", str(profile), "--examples", "5")
    assert done.returncode == 3, done.stderr[-2000:]
    assert "not started: the HSE does not serve a session before fuzzing" in done.stderr
    assert not (folder / "findings").exists()


def test_the_pytest_option_adds_robustness_to_a_conformance_run(tmp_path):
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *("--best-profile", str(ROOT / "profiles" / "reference-hse.yaml"), "--best-reference"),
            *("--best-reports", str(tmp_path), "--best-run-id", "run", "-k", "HSE-SR-001"),
            *("--best-fuzz", "emsdp", "--best-fuzz-examples", "10", "--best-fuzz-seed", "4"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    doc = compliance(tmp_path / "run")
    assert doc["run"]["mode"] == "conformance" and [c["id"] for c in doc["cases"]] == ["HSE-SR-001"]
    (entry,) = doc["robustness"]
    assert entry["seed"] == 4 and entry["verdict"] == "pass" and entry["examples"] >= 10
    assert requirement(doc, "POL-ROB-003")["verdict"] == "pass"
    assert doc["decision"]["rule"].startswith("pass when every shall case")  # the conformance decision stays


@pytest.mark.slow  # a fuzz run against a served HSE, the default budget: some 40 s
def test_a_served_hse_reached_through_a_lab_profile_is_fuzzed_as_a_lab_does(tmp_path):
    """The path labs use: the faulty HSE as its own process (`serve`), a profile a lab writes for it, no
    --reference; the finding is found, shrunk against the live process, and replays as its case."""
    with ServedReference("hse", tmp_path / "served", ROOT / "profiles" / "reference-hse.yaml", (SKIPPED_MAC,)) as sut:
        sut.start()
        data = sut.profile_data()
        data["pixit"]["silence_window"] = 0.05  # what a lab gives for a SUT that reacts within milliseconds
        lab = sut.write_profile(data)
        done, folder = fuzz(tmp_path, "--profile", str(lab))  # the default budget
        assert sut.died_at is None
    assert done.returncode == 1, done.stderr[-2000:]
    doc = compliance(folder)
    assert doc["run"]["reference"] is False and doc["run"]["faults"] == []
    (entry,) = doc["robustness"]
    (finding,) = entry["findings"]
    assert finding["oracle"] == "no_action_on_forged" and "session_terminate_request" in finding["summary"]
    assert [c["verdict"] for c in doc["cases"]] == ["warn"]  # replayed against the served process
