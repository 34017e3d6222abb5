"""The plugfest interop matrix: one row per run (its SUT), one column per test group, verdict counts in each cell.

Built only from each run's compliance.json, like report.html, and written as HTML and as Markdown (for a wiki
or a chat). Runs of different SUT kinds get a table each, since their suites share no group. A cell counts
pass / fail / not applicable, and names any other verdict (warn, inconclusive, error, skipped) beside them.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.report.html import REPORT, environment, load_run

SHOWN = ("pass", "fail", "not applicable")


@dataclass(frozen=True)
class Cell:
    counts: Counter[str]

    @property
    def others(self) -> list[tuple[str, int]]:
        return sorted((v, n) for v, n in self.counts.items() if v not in SHOWN)

    @property
    def state(self) -> str:
        """The cell's colour: fail if anything failed or errored, pass if all applicable cases passed."""
        if self.counts["fail"] or self.counts["error"]:
            return "fail"
        if not +self.counts:
            return "empty"
        applicable = sum(n for v, n in self.counts.items() if v != "not applicable")
        if not applicable:
            return "na"
        return "pass" if self.counts["pass"] == applicable else "mixed"

    @property
    def main(self) -> str:
        """pass / fail / not applicable counts, or a dash where the run had no case of the group."""
        if not +self.counts:
            return "—"
        return " / ".join(str(self.counts[v]) for v in SHOWN)

    @property
    def extra(self) -> str:
        return ", ".join(f"+{n} {v}" for v, n in self.others)

    def text(self) -> str:
        return f"{self.main} ({self.extra})" if self.extra else self.main


@dataclass(frozen=True)
class Row:
    sut: dict[str, Any]
    run: dict[str, Any]
    outcome: str
    report: str | None  # link to the run's report.html, relative to the matrix
    cells: dict[str, Cell]


@dataclass
class Table:
    kind: str
    groups: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)


def build_matrix(run_dirs: list[Path], out_dir: Path) -> list[Table]:
    """One table per SUT kind, rows in the order the runs were given; links are relative to out_dir."""
    tables: dict[str, Table] = {}
    for run_dir in run_dirs:
        doc = load_run(run_dir)
        table = tables.setdefault(doc["sut"]["kind"], Table(doc["sut"]["kind"]))
        counts: dict[str, Counter[str]] = {}
        for case in doc["cases"]:
            counts.setdefault(case.get("group") or "other", Counter())[case["verdict"]] += 1
        report = run_dir / REPORT
        table.rows.append(
            Row(
                sut=doc["sut"],
                run=doc["run"],
                outcome=doc["decision"]["outcome"],
                report=Path(os.path.relpath(report.resolve(), out_dir.resolve())).as_posix()
                if report.is_file()
                else None,
                cells={group: Cell(c) for group, c in counts.items()},
            )
        )
    for table in tables.values():
        table.groups = sorted({group for row in table.rows for group in row.cells})
    return [tables[kind] for kind in sorted(tables)]


def write_matrix(run_dirs: list[Path], out_dir: Path) -> list[Path]:
    """out_dir/matrix.html and out_dir/matrix.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = build_matrix(run_dirs, out_dir)
    env = environment()
    env.filters["md"] = _markdown_cell
    written = []
    for name in ("matrix.html", "matrix.md"):
        out = out_dir / name
        out.write_text(env.get_template(f"{name}.j2").render(tables=tables, empty=Cell(Counter())), encoding="utf-8")
        written.append(out)
    return written


def _markdown_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")
