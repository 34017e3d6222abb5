"""`best-conformance matrix`: real runs (the reference EMKS conformant and faulty, a faulty HSE) as SUT x group."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from urllib.parse import unquote

from tests.html.dom import parse
from tests.runs import EXE


def expected_cells(run):
    """group -> (pass, fail, not applicable) counted straight from compliance.json."""
    by_group: dict[str, Counter] = {}
    for case in run.doc["cases"]:
        by_group.setdefault(case["group"], Counter())[case["verdict"]] += 1
    return {g: (c["pass"], c["fail"], c["not applicable"]) for g, c in by_group.items()}


def matrix(runs, tmp_path, *names):
    out = tmp_path / "plugfest"
    done = subprocess.run(
        [EXE, "matrix", *(str(runs[n].dir) for n in names), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"matrix: {out / 'matrix.html'}, {out / 'matrix.md'}"
    return out


def test_html_matrix_has_a_row_per_run_and_the_counts_of_each_group(runs, tmp_path):
    names = ("emks", "emks_fault", "hse_fault")
    out = matrix(runs, tmp_path, *names)
    page = parse((out / "matrix.html").read_text())
    tables = {t.attrs["data-kind"]: t for t in page.find_all("table")}
    assert set(tables) == {"emks", "hse"}, "one table per SUT kind"
    for name in names:
        run = runs[name]
        (row,) = tables[run.doc["sut"]["kind"]].find_all("tr", data_run=run.doc["run"]["id"])
        assert run.doc["sut"]["product"] in row.text and run.doc["decision"]["outcome"] in row.text
        for group, (passed, failed, na) in expected_cells(run).items():
            (cell,) = row.find_all("td", data_group=group)
            assert cell.text.startswith(f"{passed} / {failed} / {na}"), (name, group, cell.text)
        (link,) = [a.attrs["href"] for a in row.find_all("a")]
        assert (out / unquote(link)).resolve() == run.report.resolve()


def test_the_fault_shows_in_the_matrix_and_other_verdicts_are_named(runs, tmp_path):
    out = matrix(runs, tmp_path, "emks", "emks_fault")
    page = parse((out / "matrix.html").read_text())
    good, bad = (page.find_all("tr", data_run=runs[n].doc["run"]["id"])[0] for n in ("emks", "emks_fault"))
    assert {c.attrs["class"] for c in good.find_all("td") if "data-group" in c.attrs} == {"cell pass"}
    assert "cell fail" in {c.attrs["class"] for c in bad.find_all("td") if "data-group" in c.attrs}
    warned = Counter(c["verdict"] for c in runs["emks_fault"].doc["cases"])["warn"]
    shown = sum(int(n) for n in re.findall(r"\+(\d+) warn", bad.text))
    assert warned and shown == warned and "wrong_register_status" in bad.text


def test_markdown_matrix_is_a_table_per_kind_with_links(runs, tmp_path):
    out = matrix(runs, tmp_path, "emks", "emks_fault", "hse_fault")
    md = (out / "matrix.md").read_text()
    assert "## EMKS implementations" in md and "## HSE implementations" in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and "](" in line]
    assert len(rows) == 3
    for row in rows:
        cells = row.strip("|").split(" | ")
        link = re.search(r"\]\(([^)]+)\)", cells[1]).group(1)
        assert (out / unquote(link)).name == "report.html" and (out / unquote(link)).is_file()
    emks_header = next(line for line in md.splitlines() if line.startswith("| SUT") and "REG" in line.upper())
    groups = [c.strip() for c in emks_header.strip("|").split("|")][3:]
    assert sorted(groups) == sorted(expected_cells(runs["emks"]))
    emks_row = next(row for row in rows if runs["emks"].doc["run"]["id"] in row)
    assert emks_row.endswith(" | ".join("{} / {} / {}".format(*expected_cells(runs["emks"])[g]) for g in groups) + " |")


def test_a_folder_that_is_no_run_stops_the_matrix_with_one_line(runs, tmp_path):
    done = subprocess.run(
        [EXE, "matrix", str(runs["emks"].dir), str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "no compliance.json" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
