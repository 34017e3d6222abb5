"""The requirement ledger: every requirement the harness knows of, as data (one YAML file per source).

A requirement has a stable id, the clause it comes from, a level (shall / should / may), the SUT kinds it
concerns, and a paraphrase of what it asks (never the specification's own words). Whether it is tested is
not stored: the cases say which requirements they check (`requirements:` in a case), and `coverage` computes
it. What is stored is why a requirement no case checks stays untested (`untested: {reason, note}`).

The loader refuses a broken ledger with every problem at once, each naming its file, line and id.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from conformance.yaml_lines import LineLoader

# The words a requirement (and a case) is written in: its level of obligation, the SUT kinds, a clause reference.
LEVELS = ("shall", "should", "may")
SUT_KINDS = ("hse", "emks", "emse", "ue")
REF_PATTERN = re.compile(r"^(TS|TR) \d\d\.\d{3}( [A-Z]?[\d.]+[\w.-]*| Annex [A-Z](\.[\d.]+)?)?$|^seed \d{3} [\w.]+$")

# Why no case checks a requirement. Every untested requirement names one of these and says more in a note.
REASONS = {
    "out_of_scope": "concerns an entity or interface the harness does not test (HSS, SCEF, regulation)",
    "untestable": "cannot be observed from outside the SUT",
    "needs_pics": "a case needs a PICS or PIXIT item the SUT profile does not have yet",
    "binding_unknown": "rests on a value the specifications leave open: a case would only check the binding",
    "not_covered": "testable with what the harness has, but no case checks it yet: a hole in the suites",
    "run_mode": "checked by a run mode, not by a case: best-conformance fuzz (its verdict joins compliance.json)",
}
# The SUT kinds a requirement may concern: those the harness tests, and entities it does not (yet).
CONCERNS = (*SUT_KINDS, "hss")
ID_PATTERN = re.compile(r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*-\d{3}$")
# A clause is a spec reference as cases cite them, or, for the harness's own policy, the binding key it sets.
CLAUSE_PATTERN = re.compile(rf"{REF_PATTERN.pattern}|^binding [a-z0-9_]+(\.[a-z0-9_]+)*$")
_FIELDS = {"id", "clause", "level", "sut", "text", "note", "untested"}
_REQUIRED = ("id", "clause", "level", "sut", "text")


class LedgerError(ValueError):
    """The ledger is broken; `problems` lists each one as 'file:line: id: what'."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(f"requirement ledger: {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class Untested:
    reason: str
    note: str


@dataclass(frozen=True)
class Requirement:
    id: str
    source: str  # the ledger file's stem, e.g. ts33163
    clause: str  # e.g. "TS 33.163 6.2.2", "seed 002 6.x.2.2.2.1", "binding emsdp.error_reaction"
    level: str
    sut: tuple[str, ...]
    text: str  # a paraphrase
    note: str
    untested: Untested | None  # why no case checks it, when none does
    path: str
    line: int

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class Source:
    key: str
    title: str
    note: str
    path: str


class Ledger(Mapping[str, Requirement]):
    """Requirements by id, in file order, and the sources they come from."""

    def __init__(self, requirements: Iterable[Requirement], sources: Iterable[Source]):
        self._by_id = {r.id: r for r in requirements}
        self.sources = {s.key: s for s in sources}

    def __getitem__(self, key: str) -> Requirement:
        return self._by_id[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def suggest(self, unknown: str) -> str:
        """'; did you mean X?' for a mistyped id, else ''."""
        close = difflib.get_close_matches(unknown, self._by_id, n=1, cutoff=0.6)
        return f"; did you mean {close[0]}?" if close else ""


def ledger_dir() -> Path:
    return Path(str(resources.files("conformance.requirements")))


@functools.cache
def shipped_ledger() -> Ledger:
    """The ledger shipped with the harness (read once per process)."""
    return load_ledger(sorted(ledger_dir().glob("*.yaml")))


def load_ledger(paths: Iterable[Path]) -> Ledger:
    """Every requirement of the given files; LedgerError lists every problem of every file."""
    problems: list[str] = []
    requirements: list[Requirement] = []
    sources: list[Source] = []
    seen: dict[str, str] = {}
    for path in paths:
        try:
            data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=LineLoader)
        except OSError as exc:
            problems.append(f"{path}:1: cannot read: {exc.strerror or exc}")
            continue
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problems.append(f"{path}:{mark.line + 1 if mark else 1}: not valid YAML: {getattr(exc, 'problem', exc)}")
            continue
        if not isinstance(data, dict) or not isinstance(data.get("source"), dict) or "requirements" not in data:
            problems.append(f"{path}:1: a ledger file is a mapping with 'source' (title, note) and 'requirements'")
            continue
        source = data["source"]
        if not str(source.get("title", "")).strip():
            problems.append(f"{path}:{source['__line__']}: source: missing 'title'")
        sources.append(Source(Path(path).stem, str(source.get("title", "")), str(source.get("note", "")), str(path)))
        for item in data["requirements"] or []:
            requirement = _requirement(Path(path), item, problems)
            if requirement is None:
                continue
            if requirement.id in seen:
                problems.append(
                    f"{requirement.location}: {requirement.id}: duplicate id, also at {seen[requirement.id]}"
                )
                continue
            seen[requirement.id] = requirement.location
            requirements.append(requirement)
    if problems:
        raise LedgerError(problems)
    return Ledger(requirements, sources)


def _requirement(path: Path, item: Any, problems: list[str]) -> Requirement | None:
    if not isinstance(item, dict):
        problems.append(f"{path}:1: a requirement must be a mapping with {', '.join(_REQUIRED)}, got {item!r}")
        return None
    line = item["__line__"]
    rid = str(item.get("id", "?"))
    where = f"{path}:{line}: {rid}"
    before = len(problems)
    for key in sorted(set(item) - _FIELDS - {"__line__"}):
        problems.append(f"{where}: unknown field {key!r}; known: {', '.join(sorted(_FIELDS))}")
    for key in _REQUIRED:
        if key not in item or item[key] in (None, "", []):
            problems.append(f"{where}: missing {key!r}")
    if "id" in item and not ID_PATTERN.match(rid):
        problems.append(f"{where}: id must be like BEST-HDR-001 (capitals, digits, dashes, three-digit number)")
    level = item.get("level")
    if "level" in item and level not in LEVELS:
        problems.append(f"{where}: level must be one of {', '.join(LEVELS)}, got {level!r}")
    clause = str(item.get("clause", ""))
    if "clause" in item and not CLAUSE_PATTERN.match(clause):
        problems.append(
            f"{where}: clause {clause!r} is not like 'TS 33.163 6.2.2', 'seed 002 6.x.2.3' or 'binding <key>'"
        )
    sut = item.get("sut") or []
    sut = [sut] if isinstance(sut, str) else sut
    for kind in sut:
        if kind not in CONCERNS:
            problems.append(f"{where}: sut {kind!r} is not one of {', '.join(CONCERNS)}")
    untested = _untested(where, item.get("untested"), problems)
    if sut and set(sut) <= set(CONCERNS) - set(SUT_KINDS) and (untested is None or untested.reason != "out_of_scope"):
        problems.append(
            f"{where}: concerns only {', '.join(sut)}, which the harness does not test: untested out_of_scope"
        )
    if len(problems) > before:
        return None
    return Requirement(
        id=rid,
        source=path.stem,
        clause=clause,
        level=level,
        sut=tuple(sut),
        text=" ".join(str(item["text"]).split()),
        note=" ".join(str(item.get("note", "")).split()),
        untested=untested,
        path=str(path),
        line=line,
    )


def _untested(where: str, raw: Any, problems: list[str]) -> Untested | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append(f"{where}: untested must be {{reason: ..., note: ...}}, got {raw!r}")
        return None
    reason, note = raw.get("reason"), " ".join(str(raw.get("note") or "").split())
    for key in sorted(set(raw) - {"reason", "note", "__line__"}):
        problems.append(f"{where}: untested: unknown field {key!r}; known: note, reason")
    if reason not in REASONS:
        problems.append(f"{where}: untested reason must be one of {', '.join(REASONS)}, got {reason!r}")
    if not note:
        problems.append(f"{where}: untested needs a note saying why")
    return Untested(str(reason), note)
