"""Verdicts and their evidence, and the results file that grows as each case ends."""

from __future__ import annotations

import enum
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


class Verdict(enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"  # a should/may case that failed: reported, but not a non-conformance
    INCONCLUSIVE = "inconclusive"  # the SUT's behaviour could not be judged (e.g. the preamble failed)
    ERROR = "error"  # the harness or the environment failed
    NOT_APPLICABLE = "not applicable"  # the PICS say the SUT does not claim this
    SKIPPED = "skipped"


class CheckFailed(Exception):
    """An expectation the SUT did not meet."""

    def __init__(self, expectation: str, expected: Any, observed: Any):
        super().__init__(f"{expectation}: expected {expected}, observed {observed}")
        self.expectation, self.expected, self.observed = expectation, expected, observed


class Inconclusive(Exception):
    """A step the case needs could not be completed, so the behaviour under test could not be judged."""


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
    # secret values the case met (keys it derived, key material a failed key check saw): never written, only
    # used to mask outputs (conformance.report.secrets)
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
        line = json.dumps(result.to_json(), default=_jsonable, sort_keys=True) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as out:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())


def read_results(path: Path) -> list[dict[str, Any]]:
    """The results of a run; a torn last line (the run was killed mid-write) is left out."""
    results = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            results.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return results


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, enum.Enum):
        return value.value
    return repr(value)
