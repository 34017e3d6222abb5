"""Verdicts and their evidence, and the results file that grows as each case ends."""

from __future__ import annotations

import enum
import json
import os
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


class Verdict(enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"  # a should/may case that failed: reported, but not a non-conformance
    INCONCLUSIVE = "inconclusive"  # the SUT's behaviour could not be judged (e.g. the preamble failed)
    ERROR = "error"  # the harness or the environment failed
    NOT_APPLICABLE = "not applicable"  # the PICS say the SUT does not claim this (the PICS only)
    NOT_RUN = "not run"  # the profile lacks what the case needs (a certificate, a trigger, test data): named
    SKIPPED = "skipped"


class CheckFailed(Exception):
    """An expectation the SUT did not meet."""

    def __init__(self, expectation: str, expected: Any, observed: Any):
        super().__init__(f"{expectation}: expected {expected}, observed {observed}")
        self.expectation, self.expected, self.observed = expectation, expected, observed


class NoAnswer(CheckFailed):
    """The SUT did not answer where it had to (silence, a timeout, a closed connection). Alone it is a failure;
    after a step that expected absence it shows that the SUT stopped answering, and the runner makes the case
    inconclusive, since the absence it saw proves nothing then."""


class Inconclusive(Exception):
    """A step the case needs could not be completed, so the behaviour under test could not be judged."""


class NotJudged(Inconclusive):
    """Timing or the network, not the SUT, spoiled what a step saw: an answer after its window ("late by N ms"),
    a datagram after a silence window before the next step acted, a session the network's duplicate of the
    Session Request superseded. Inconclusive: never a pass, never charged to the SUT."""


class Unanswered(Inconclusive):
    """The SUT did not answer a valid request the case needed first (its preamble), so the behaviour under test
    could not be judged."""


class SutAbsent(Unanswered):
    """Nothing answers at the SUT's endpoint (connection refused, ICMP port unreachable): the SUT is not there,
    so nothing it does or does not do can be judged."""


class NotApplicable(Exception):
    """The SUT does not claim what the case tests, per its PICS. Only PICS-based decisions raise this."""


class NotRun(Exception):
    """The case cannot run because the profile lacks something it needs (a certificate, a trigger, test
    data). The message names the profile field to fill in. Never a pass: the decision counts it as not run."""


@dataclass
class Result:
    case: str
    title: str
    level: str
    refs: list[str]
    verdict: Verdict
    reason: str = ""
    failed_step: int | None = None  # line of the step in the case file
    expected: Any = None
    observed: Any = None
    binding_dependent: list[dict[str, Any]] = field(default_factory=list)  # non-confirmed values it rests on
    pcap: str | None = None
    trace: list[dict[str, Any]] = field(default_factory=list)
    started: float = 0.0
    duration: float = 0.0
    requirements: list[str] = field(default_factory=list)  # ledger ids the case checks
    unanswered: bool = False  # the case ended because the SUT did not answer at all (a run may stop early on it)
    notes: list[str] = field(default_factory=list)  # checks not made, and why (e.g. an optional TLV was absent)
    # secret values the case met (keys it derived, key material a failed key check saw): never written, only
    # used to mask outputs (conformance.masking)
    secrets: set[bytes] = field(default_factory=set, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("secrets", None)
        data["verdict"] = self.verdict.value
        return data


class ResultsFile:
    """results.jsonl: one JSON line per finished case, flushed and synced, so a killed run keeps each one."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()

    def append(self, result: Result) -> None:
        self.extend([result])

    def extend(self, results: Iterable[Result]) -> None:
        """Results that finished together (e.g. a selftest run's, merged from its slices): one write, one sync."""
        lines = "".join(json.dumps(r.to_json(), default=_jsonable, sort_keys=True) + "\n" for r in results)
        with self._lock, open(self.path, "a", encoding="utf-8") as out:
            out.write(lines)
            out.flush()
            os.fsync(out.fileno())


@dataclass
class RunResults:
    """What results.jsonl holds: the results, and each line that could not be read (named, never dropped
    silently: a lost line is a case whose verdict the run cannot show)."""

    results: list[dict[str, Any]]
    unreadable: list[str]


def load_results(path: Path) -> RunResults:
    """Every line of a results file that is a case result; every other line (a torn last line after a crash, or
    damage anywhere) is named in `unreadable`, so that a report can say what it could not read."""
    results, unreadable = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            result = json.loads(line)
        except json.JSONDecodeError as exc:
            unreadable.append(f"{path.name} line {number}: not JSON ({exc.msg}): {line[:80]!r}")
            continue
        if not isinstance(result, dict) or not {"case", "verdict", "level"} <= set(result):
            unreadable.append(f"{path.name} line {number}: not a case result: {line[:80]!r}")
            continue
        results.append(result)
    return RunResults(results, unreadable)


def read_results(path: Path) -> list[dict[str, Any]]:
    """The readable results of a run (`load_results` also names the lines that could not be read)."""
    return load_results(path).results


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, enum.Enum):
        return value.value
    return repr(value)
