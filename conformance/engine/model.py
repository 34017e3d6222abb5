"""Declarative conformance cases: the YAML model, its loader, and the linter that guards it.

A case is data (design.md 6): id, title, refs to spec clauses, level, applicability, and steps whose verbs and
matchers are small Python functions of `engine.verbs` and `engine.matchers`. The linter reports every problem
with its file and line, so a suite author never meets a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from conformance.requirements.ledger import LEVELS, REF_PATTERN, SUT_KINDS
from conformance.yaml_lines import LineLoader

STEP_KEYS = ("with", "check", "within", "as")  # beside its verb, what a step may have
CASE_FIELDS = ("id", "title", "refs", "requirements", "level", "applies", "steps", "purpose", "rests_on", "negative")


@dataclass(frozen=True)
class Step:
    verb: str
    args: dict[str, Any]
    line: int


@dataclass(frozen=True)
class Case:
    id: str
    title: str
    refs: tuple[str, ...]
    level: str
    sut: str
    pics: tuple[str, ...]
    steps: tuple[Step, ...]
    purpose: str
    rests_on: tuple[str, ...]  # binding keys the verdict depends on (marked when not confirmed)
    negative: bool
    path: str
    line: int
    group: str = ""
    requirements: tuple[str, ...] = ()  # ledger ids the case checks (conformance/requirements/)

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass
class LintReport:
    errors: list[str] = field(default_factory=list)

    def add(self, path: str, line: int, message: str) -> None:
        self.errors.append(f"{path}:{line}: {message}")


def suite_dir(kind: str) -> Path:
    return Path(str(resources.files("conformance.suites").joinpath(kind)))


def load_cases(paths: Iterable[Path], report: LintReport) -> list[Case]:
    """Every case of the given YAML files (a file holds a list of cases, or one case); problems go to report."""
    cases = []
    for path in sorted(paths):
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=LineLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            report.add(str(path), mark.line + 1 if mark else 1, f"not valid YAML: {exc}")
            continue
        items = data if isinstance(data, list) else [data]
        for item in items:
            case = _case(path, item, report)
            if case is not None:
                cases.append(case)
    return cases


def _case(path: Path, item: Any, report: LintReport) -> Case | None:
    where = str(path)
    if not isinstance(item, dict):
        report.add(where, 1, "a case must be a mapping with id, title, refs, level, applies and steps")
        return None
    line = item.get("__line__", 1)
    for key in sorted(set(item) - {*CASE_FIELDS, "__line__"}):
        report.add(where, line, f"unknown field {key!r}; known: {', '.join(sorted(CASE_FIELDS))}")
    for key in ("id", "title", "refs", "level", "applies", "steps"):
        if key not in item:
            report.add(where, line, f"case {item.get('id', '?')}: missing {key!r}")
    refs = item.get("refs") or []
    if not isinstance(refs, list) or not refs:
        report.add(where, line, f"case {item.get('id', '?')}: refs must name at least one spec clause")
        refs = []
    for ref in refs:
        if not isinstance(ref, str) or not REF_PATTERN.match(ref):
            report.add(
                where,
                line,
                f"case {item.get('id', '?')}: ref {ref!r} is not like 'TS 33.163 6.2.2' or 'seed 002 6.x.2.2.2.1'",
            )
    requirements = item.get("requirements") or []
    if not isinstance(requirements, list) or not all(isinstance(r, str) for r in requirements):
        report.add(where, line, f"case {item.get('id', '?')}: requirements must be a list of requirement ids")
        requirements = []
    level = item.get("level")
    if level not in LEVELS:
        report.add(where, line, f"case {item.get('id', '?')}: level must be one of {', '.join(LEVELS)}, got {level!r}")
    applies = item.get("applies") or {}
    sut = applies.get("sut") if isinstance(applies, dict) else None
    if sut not in SUT_KINDS:
        report.add(where, line, f"case {item.get('id', '?')}: applies.sut must be one of {', '.join(SUT_KINDS)}")
    pics = applies.get("pics", []) if isinstance(applies, dict) else []
    pics = [pics] if isinstance(pics, str) else pics
    steps = []
    for raw in item.get("steps") or []:
        step = _step(where, raw, report)
        if step:
            steps.append(step)
    if not steps and "steps" in item:
        report.add(where, line, f"case {item.get('id', '?')}: no steps")
    if any(k not in item for k in ("id", "title", "level")) or level not in LEVELS or sut not in SUT_KINDS:
        return None
    return Case(
        id=str(item["id"]),
        title=str(item["title"]),
        refs=tuple(refs),
        level=level,
        sut=sut,
        pics=tuple(pics),
        steps=tuple(steps),
        purpose=str(item.get("purpose", "")).strip(),
        rests_on=tuple(item.get("rests_on", [])),
        negative=bool(item.get("negative", False)),
        path=where,
        line=line,
        group=Path(where).stem,
        requirements=tuple(requirements),
    )


def _step(where: str, raw: Any, report: LintReport) -> Step | None:
    if not isinstance(raw, dict):
        report.add(where, 1, f"a step must be a mapping with one verb, got {raw!r}")
        return None
    line = raw.get("__line__", 1)
    body = {k: v for k, v in raw.items() if k != "__line__"}
    verbs = [k for k in body if k not in STEP_KEYS]
    if len(verbs) != 1:
        hints = [
            f"; did you mean {close[0]!r} for {key!r}?"
            for key in verbs
            for close in [difflib.get_close_matches(str(key), STEP_KEYS, n=1, cutoff=0.6)]
            if close
        ]
        report.add(where, line, f"a step needs exactly one verb, got {verbs or 'none'}{''.join(hints)}")
        return None
    verb = verbs[0]
    args = {k: _strip_lines(v) for k, v in body.items() if k != verb}
    args["_value"] = _strip_lines(body[verb])
    return Step(verb, args, line)


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != "__line__"}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value
