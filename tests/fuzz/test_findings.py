"""What a fuzz run writes (findings.py: a finding is a replayable case, fuzz.json), the catalogue's `found_by`
(faults only fuzzing finds: the selftest does not run them), and the `fuzz` command's input checks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from conformance.cli import cli
from conformance.engine.lint import load_suite
from conformance.faults import CatalogueError, load_catalogue
from conformance.fuzz.findings import Finding, FuzzReport, read_fuzz_json, write_findings, write_fuzz_json
from conformance.selftest import SelftestError, kind_faults, plan

FORGED = Finding(
    "emsdp",
    "no_action_on_forged",
    "a session_terminate_request with mac was acted on: the HSE answered session_terminate_response",
    [
        {"start_session": {}},
        {"send": "manage_keys_request"},
        {"expect": "manage_keys_request"},
        {"send": "session_terminate_request", "with": {"mac": "corrupt"}},
        {"expect": "silence_or_reject", "within": "20ms"},
        {"probe": "session"},
    ],
    None,
    7,
)
CRASH = Finding(
    "emsdp",
    "still_serves",
    "after the sequence a fresh UE cannot set up a session",
    [{"send": "raw", "as": "fuzz", "with": {"hex": "00000000100102"}}, {"probe": "session"}],
    "pcaps/FUZZ-EMSDP-002.pcap",
    1,
)


def test_a_finding_is_written_as_one_case_that_lints(tmp_path):
    paths = write_findings(tmp_path, [FORGED, CRASH], "hse")
    assert [p.name for p in paths] == ["emsdp-1.yaml", "emsdp-2.yaml"]
    case = yaml.safe_load(paths[0].read_text(encoding="utf-8"))
    assert case["id"] == "FUZZ-EMSDP-001" and case["title"] == FORGED.summary
    assert case["refs"] == ["TS 33.117"] and case["requirements"] == ["POL-ROB-003"]
    assert case["level"] == "should" and case["applies"] == {"sut": "hse"} and case["negative"] is True
    assert case["steps"] == FORGED.steps
    assert yaml.safe_load(paths[1].read_text(encoding="utf-8"))["negative"] is False  # a crash: a proof of life
    cases, lint = load_suite(paths)
    assert lint.errors == [] and [c.id for c in cases] == ["FUZZ-EMSDP-001", "FUZZ-EMSDP-002"]


def test_fuzz_json_has_each_interface_and_reads_back(tmp_path):
    report = FuzzReport("emsdp", 120, 6.0, 7, [FORGED], found_after={"examples": 13, "seconds": 0.4})
    path = write_fuzz_json(tmp_path, [report], profile="p.yaml")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["profile"] == "p.yaml" and data["interfaces"][0]["examples_per_second"] == 20.0
    assert read_fuzz_json(path) == [report]


# ---- the catalogue: found_by --------------------------------------------------------------------------------

FUZZ_ONLY = """\
faults:
  - name: crash
    component: hse
    layer: dead
    description: dies
    dead: [emsdp]
    found_by: [emsdp]
"""


def test_a_fault_only_fuzzing_finds_needs_no_catchers():
    (fault,) = load_catalogue(FUZZ_ONLY)
    assert fault.found_by == ("emsdp",) and dict(fault.caught_by) == {}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("found_by: [emsdp]", "found_by: [dtls]"), "found_by ['dtls'] must list distinct interfaces"),
        (("found_by: [emsdp]", "found_by: []"), "missing field(s) caught_by (or found_by"),
        (("    found_by: [emsdp]\n", ""), "missing field(s) caught_by (or found_by"),
    ],
)
def test_a_wrong_found_by_is_refused(change, message):
    with pytest.raises(CatalogueError, match=re.escape(message)):
        load_catalogue(FUZZ_ONLY.replace(*change))


def test_the_selftest_does_not_run_faults_only_fuzzing_finds():
    hse = kind_faults("hse")
    assert "hse_crashes_on_empty_ue_config" not in hse and "hse_skips_mac_on_terminate_after_manage_keys" not in hse
    assert "no_reply" in hse
    with pytest.raises(SelftestError, match="only fuzzing finds it"):
        plan(faults=["hse_crashes_on_empty_ue_config"])


# ---- the command --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--examples", "3", "--time", "1"],
        ["--fault", "no_such_fault"],
        ["--profile", "profiles/reference-hse.yaml", "--no-reference", "--fault", "no_reply"],
        ["--profile", "profiles/reference-emks.yaml", "--interface", "emsdp"],
    ],
)
def test_bad_input_exits_2(args, tmp_path):
    result = CliRunner().invoke(cli, ["fuzz", *args, "--reports", str(tmp_path)])
    assert result.exit_code == 2, result.output


def test_the_conformant_reference_exits_0_with_a_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    result = CliRunner().invoke(cli, ["fuzz", "--examples", "5", "--seed", "3", "--reports", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (folder,) = tmp_path.glob("fuzz-*")
    (report,) = read_fuzz_json(folder / "fuzz.json")
    assert report.interface == "emsdp" and report.seed == 3 and report.examples >= 5 and report.findings == []
