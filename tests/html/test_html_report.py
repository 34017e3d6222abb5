"""report.html of real runs: what it shows matches compliance.json, it links only into the run folder, and
`best-conformance report` reproduces it byte for byte."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import pytest

from conformance.report.html import write_report
from tests.html.dom import parse
from tests.runs import EXE


def report(run):
    return parse(run.report.read_text(encoding="utf-8"))


def test_the_run_writes_report_html_and_says_where(runs):
    run = runs["hse_fault"]
    assert run.report.is_file()
    assert not (run.dir / "summary.html").exists(), "report.html replaces summary.html"


@pytest.mark.parametrize("name", ["hse_fault", "emks", "emks_fault"])
def test_verdict_table_and_decision_match_compliance_json(runs, name):
    run = runs[name]
    page = report(run)
    rows = page.by_id("verdicts").find_all("tr")[1:]
    shown = {r.attrs["data-case"]: r.find_all("td")[3].find_all("span")[0].text for r in rows}
    assert shown == {c["id"]: c["verdict"] for c in run.doc["cases"]}
    decision = page.by_id("decision")
    assert decision.attrs["data-outcome"] == run.doc["decision"]["outcome"]
    assert f"Decision: {run.doc['decision']['outcome'].upper()}" in decision.text
    assert run.doc["decision"]["rule"] in decision.text and "`" not in decision.text  # no raw markdown
    for failed in run.doc["decision"]["failed_shall"]:
        assert decision.find_all("a", href=f"#{failed}")


def test_the_faulty_runs_show_every_kind_of_verdict_they_had(runs):
    """The fixtures are worth something only if they hold failures: a report of all-pass proves little."""
    verdicts = Counter(c["verdict"] for c in runs["hse_fault"].doc["cases"])
    assert verdicts["fail"] and verdicts["pass"] and verdicts["inconclusive"] and verdicts["warn"]
    assert runs["hse_fault"].doc["decision"]["outcome"] == "fail"
    assert runs["emks"].doc["decision"]["outcome"] == "pass"


def test_totals_and_sut_identity_are_in_the_summary(runs):
    run = runs["emks_fault"]
    page = report(run)
    totals = page.by_id("totals").text
    for verdict, count in run.doc["totals"].items():
        assert f"{verdict} {count}" in totals
    summary = page.by_id("summary").text
    sut = run.doc["sut"]
    assert f"{sut['vendor']} · {sut['product']} · version {sut['version']}" in summary
    assert run.doc["harness"]["version"] in summary and run.doc["suite"]["version"] in summary
    assert "wrong_register_status" in summary


def test_each_case_section_has_its_facts_and_evidence_links_resolve(runs):
    run = runs["hse_fault"]
    page = report(run)
    failed = next(c for c in run.doc["cases"] if c["verdict"] == "fail" and c["expected"] is not None)
    section = page.by_id(failed["id"])
    assert failed["reason"] in section.text and ", ".join(failed["refs"]) in section.text
    cells = section.find_all("table", **{"class": "expected"})[0].find_all("td")
    assert str(failed["expected"]) in cells[0].text and failed["observed"].split()[0] in cells[1].text
    for key in (d["key"] for d in failed["binding_dependent"]):
        assert key in section.text
    links = [a.attrs["href"] for a in section.find_all("a") if not a.attrs["href"].startswith("#")]
    assert sorted(links) == sorted(e["path"] for e in failed["evidence"])
    for link in links:
        assert (run.dir / unquote(link)).is_file(), link


def test_every_link_stays_inside_the_page_or_the_run_folder(runs):
    """Self-contained: no script, no stylesheet or image from elsewhere, no absolute or outside link."""
    run = runs["hse_fault"]
    html = run.report.read_text(encoding="utf-8")
    assert "<script" not in html and "<link" not in html and "<img" not in html
    page = parse(html)
    anchors = {e.attrs["id"] for e in page.iter() if "id" in e.attrs}
    for element in page.iter():
        target = element.attrs.get("href") or element.attrs.get("src")
        if target is None:
            continue
        if target.startswith("#"):
            assert target[1:] in anchors, f"dangling anchor {target}"
        else:
            assert not re.match(r"^[a-z]+:|^/|\.\.", target), target
            assert (run.dir / unquote(target)).exists(), target


def test_the_ladder_has_one_arrow_per_decoded_message(runs):
    run = runs["hse_fault"]
    page = report(run)
    for case in run.doc["cases"]:
        path = run.dir / "traces" / f"{case['id']}.json"
        trace = json.loads(path.read_text()) if path.exists() else []
        section = page.by_id(case["id"])
        arrows = [g for g in section.find_all("g") if "arrow" in g.attrs.get("class", "").split()]
        assert len(arrows) == len([m for m in trace if "src" in m]), case["id"]
        for number, message in enumerate(trace, 1):
            if (message.get("command") or {}).get("name"):
                assert (
                    f"{number}. " in arrows[number - 1].text and message["command"]["name"] in arrows[number - 1].text
                )
            assert page.by_id(f"{case['id']}-m{number}").tag == "details"


def test_binding_marks_every_value_no_spec_confirms(runs):
    run = runs["emks"]
    rows = report(run).by_id("binding-table").find_all("tr")[1:]
    assert len(rows) == len(run.doc["binding"])
    marked = [r for r in rows if r.attrs.get("class") == "assumed"]
    assert len(marked) == sum(1 for b in run.doc["binding"] if b["basis"] != "spec") > 0
    assert all(r.attrs["data-basis"] != "spec" for r in marked)


def test_requirements_table_lists_the_ledger_with_links_to_cases(runs):
    run = runs["emks"]
    if not run.doc["requirements"]:
        pytest.skip("this run's compliance.json lists no requirements (no ledger installed)")
    page = report(run)
    rows = {r.attrs["data-requirement"]: r for r in page.by_id("requirement-table").find_all("tr")[1:]}
    assert set(rows) == {r["id"] for r in run.doc["requirements"]}
    for requirement in run.doc["requirements"]:
        links = [a.attrs["href"] for a in rows[requirement["id"]].find_all("a")]
        assert links == [f"#{c}" for c in requirement["cases"]]  # the whole suite ran: every case is linked


def test_report_command_reproduces_the_file_byte_for_byte(runs, tmp_path):
    run = runs["emks_fault"]
    copy = shutil.copytree(run.dir, tmp_path / run.dir.name)
    original = (copy / "report.html").read_bytes()
    (copy / "report.html").unlink()
    done = subprocess.run([EXE, "report", str(copy)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"report: {copy / 'report.html'}"
    assert (copy / "report.html").read_bytes() == original


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d, "no compliance.json; give a run folder written by `best-conformance run`"),
        (lambda d: d / "nope", "not a folder"),
    ],
)
def test_report_of_a_folder_that_is_no_run_is_one_line_and_exit_2(tmp_path, make, message):
    done = subprocess.run([EXE, "report", str(make(tmp_path))], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_damaged_compliance_json_is_named_not_a_traceback(runs, tmp_path):
    copy = shutil.copytree(runs["emks"].dir, tmp_path / "run")
    doc = json.loads((copy / "compliance.json").read_text())
    del doc["decision"]
    (copy / "compliance.json").write_text(json.dumps(doc))
    done = subprocess.run([EXE, "report", str(copy)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "compliance.json" in done.stderr and "decision" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_case_without_a_trace_file_says_so(runs, tmp_path):
    copy = shutil.copytree(runs["hse_fault"].dir, tmp_path / "run")
    case = next(c for c in runs["hse_fault"].doc["cases"] if any(e["kind"] == "trace" for e in c["evidence"]))
    (copy / "traces" / f"{case['id']}.json").unlink()
    section = parse(write_report(Path(copy)).read_text()).by_id(case["id"])
    assert "No decoded messages recorded for this case." in section.text
