"""Which ledger requirements the shipped cases check, computed from the cases' `requirements:` (never stored).

A requirement is tested when at least one case (of the chosen SUT kind) names it; otherwise it is untested
with the reason its ledger entry gives. A stored reason is a claim that no case checks the requirement at
all: one that a case does check is stale. In the view of one SUT kind, a requirement that only other kinds'
cases check is `not_covered` there. A tested requirement is binding-dependent when every case that checks it
rests on a binding value no spec clause confirms.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from conformance.binding import Binding, load_binding
from conformance.engine.lint import load_suite
from conformance.engine.model import Case, suite_dir
from conformance.requirements.ledger import LEVELS, REASONS, SUT_KINDS, Ledger, Requirement, shipped_ledger


@dataclass(frozen=True)
class Row:
    requirement: Requirement
    cases: tuple[str, ...]  # ids of the cases that check it (of the chosen SUT kind)
    reason: str | None  # why it is untested; None when tested
    note: str  # the reason's note when untested, else the requirement's own note
    binding_dependent: bool

    @property
    def tested(self) -> bool:
        return bool(self.cases)

    def to_json(self) -> dict[str, Any]:
        r = self.requirement
        return {
            "id": r.id,
            "source": r.source,
            "clause": r.clause,
            "level": r.level,
            "sut": list(r.sut),
            "text": r.text,
            "status": "tested" if self.tested else "untested",
            "cases": list(self.cases),
            "reason": self.reason,
            "note": self.note,
            "binding_dependent": self.binding_dependent,
        }


@dataclass(frozen=True)
class Coverage:
    sut: str | None
    rows: tuple[Row, ...]
    stale: tuple[str, ...]  # requirements with a stored untested reason that some case checks after all

    def totals(self) -> dict[str, Any]:
        tested = [row for row in self.rows if row.tested]
        by_reason = Counter(row.reason for row in self.rows if not row.tested)
        by_level = {
            level: {
                "requirements": sum(row.requirement.level == level for row in self.rows),
                "tested": sum(row.requirement.level == level for row in tested),
            }
            for level in LEVELS
        }
        return {
            "requirements": len(self.rows),
            "tested": len(tested),
            "untested": len(self.rows) - len(tested),
            "untested_by_reason": {reason: by_reason[reason] for reason in REASONS if by_reason[reason]},
            "shall_tested": by_level["shall"]["tested"],
            "by_level": by_level,
            "binding_dependent": sum(row.binding_dependent for row in tested),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "sut": self.sut,
            "totals": self.totals(),
            "requirements": [row.to_json() for row in self.rows],
            "stale_untested": list(self.stale),
        }


def shipped_cases() -> list[Case]:
    """Every case of every shipped suite; SuiteError if a suite does not lint clean."""
    cases: list[Case] = []
    for kind in SUT_KINDS:
        directory = suite_dir(kind)
        if directory.is_dir():
            found, report = load_suite(directory.glob("*.yaml"))
            if report.errors:
                raise SuiteError(report.errors)
            cases += found
    return cases


class SuiteError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("suite lint errors:\n" + "\n".join(problems))


def compute(
    cases: Iterable[Case],
    sut: str | None = None,
    ledger: Ledger | None = None,
    binding: Binding | None = None,
) -> Coverage:
    """The coverage of the ledger by the cases, for one SUT kind (its requirements and cases) or all."""
    ledger = ledger if ledger is not None else shipped_ledger()
    binding = binding if binding is not None else load_binding()
    checking: dict[str, list[Case]] = {}
    for case in cases:
        for rid in case.requirements:
            checking.setdefault(rid, []).append(case)
    rows = []
    stale = []
    for requirement in ledger.values():
        if sut is not None and sut not in requirement.sut:
            continue
        every = checking.get(requirement.id, [])
        found = [case for case in every if sut is None or case.sut == sut]
        if requirement.untested and every:
            stale.append(requirement.id)
        rows.append(_row(requirement, found, every, binding))
    return Coverage(sut, tuple(rows), tuple(stale))


def _row(requirement: Requirement, found: list[Case], every: list[Case], binding: Binding) -> Row:
    if found:
        dependent = all(_rests_on_assumption(case, binding) for case in found)
        return Row(requirement, tuple(case.id for case in found), None, requirement.note, dependent)
    if requirement.untested is not None:
        return Row(requirement, (), requirement.untested.reason, requirement.untested.note, False)
    others = sorted({case.sut for case in every})  # only possible in a view of one SUT kind
    note = f"no case of this SUT kind checks it; cases for {', '.join(others)} do" if others else "no case checks it"
    return Row(requirement, (), "not_covered", note, False)


def _rests_on_assumption(case: Case, binding: Binding) -> bool:
    for key in case.rests_on:
        try:
            if not binding.param(key).confirmed:
                return True
        except KeyError:
            return True
    return False


def render(coverage: Coverage, console: Any) -> None:
    """The coverage as a rich table with its totals."""
    from rich.table import Table

    title = f"Requirement coverage{f' ({coverage.sut.upper()})' if coverage.sut else ''}"
    table = Table(title=title, title_justify="left", show_lines=False)
    for column in ("requirement", "level", "clause", "status"):
        table.add_column(column, overflow="fold")
    for row in coverage.rows:
        r = row.requirement
        if row.tested:
            mark = " (binding-dependent)" if row.binding_dependent else ""
            status = f"[green]tested[/] by {len(row.cases)}{mark}: {', '.join(row.cases)}"
        else:
            status = f"[yellow]untested[/]: {row.reason} - {row.note}"
        table.add_row(r.id, r.level, r.clause, status)
    console.print(table)
    totals = coverage.totals()
    reasons = ", ".join(f"{n} {reason}" for reason, n in totals["untested_by_reason"].items()) or "none"
    shall = totals["by_level"]["shall"]
    console.print(
        f"{totals['requirements']} requirements: {totals['tested']} tested "
        f"({totals['binding_dependent']} binding-dependent), {totals['untested']} untested ({reasons}); "
        f"shall: {shall['tested']} of {shall['requirements']} tested"
    )
    if coverage.stale:
        console.print(f"[red]stored untested reasons that no longer hold[/]: {', '.join(coverage.stale)}")
