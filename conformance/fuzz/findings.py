"""What a fuzz run finds, and how it is written into the run folder (issue 17).

A `Finding` is one oracle that failed, with the minimal sequence Hypothesis shrank it to, already in the engine's
step shapes (send/expect/start_session/probe for EMSDP; key_client for the key server), so that it is written as
one replayable YAML case, `findings/<interface>-<n>.yaml`, that `best-conformance run --case-file FILE` runs.
A `FuzzReport` is one interface's fuzz run: `fuzz.json` in the run folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROBUSTNESS_REF = "TS 33.117"  # robustness and fuzz testing, a general SCAS requirement (clause not in the digest)
# interface -> the ledger's robustness requirement fuzzing checks (requirements/policy.yaml): the HSE acts on no
# forged or malformed message and goes on serving; the key server never answers 5xx, hangs or hands out a key wrongly
INTERFACE_REQUIREMENTS = {"emsdp": "POL-ROB-003", "key_server": "POL-REST-006"}
NEGATIVE_EXPECTATIONS = ("silence", "silence_or_reject", "message_reject")
INTERFACE_TAGS = {"emsdp": "EMSDP", "key_server": "KS"}


class FuzzSetupError(ValueError):
    """The SUT cannot be fuzzed (no key server, no key to fetch, not serving before the first example): one line
    naming what is missing. Nothing is charged to the SUT: fuzzing did not start."""


@dataclass(frozen=True)
class Finding:
    interface: str  # "emsdp" | "key_server"
    oracle: str  # "still_serves", "no_action_on_forged", "no_5xx", "no_hang", "no_key_when_refused"
    summary: str  # one line a vendor can act on
    steps: list[dict]  # the minimal sequence, as case steps -> a replayable YAML case
    pcap: str | None  # evidence: the shrunk example replayed once more under a PcapTap
    seed: int

    def case_id(self, n: int) -> str:
        return f"FUZZ-{INTERFACE_TAGS.get(self.interface, self.interface.upper())}-{n:03d}"

    def file(self, n: int) -> str:
        """Where write_findings puts it, relative to the run folder."""
        return f"findings/{self.interface}-{n}.yaml"

    def case(self, n: int, sut: str) -> dict[str, Any]:
        """The finding as one case (the engine's case shape): id FUZZ-<IF>-<n>, robustness refs, the steps."""
        return {
            "id": self.case_id(n),
            "title": self.summary,
            "purpose": f"Found by best-conformance fuzz (seed {self.seed}), shrunk by Hypothesis; oracle {self.oracle}",
            "refs": [ROBUSTNESS_REF],
            "requirements": [INTERFACE_REQUIREMENTS[self.interface]],
            "level": "should",
            # a negative case expects the SUT's refusal (the engine's lint): a forged message's silence or reject
            "negative": any(step.get("expect") in NEGATIVE_EXPECTATIONS for step in self.steps),
            "applies": {"sut": sut},
            "steps": list(self.steps),
        }


@dataclass
class FuzzReport:
    interface: str
    examples: int
    seconds: float
    seed: int
    findings: list[Finding] = field(default_factory=list)
    # optional: {"examples": n, "seconds": s} run when the first failure was seen (before shrinking); time to find
    found_after: dict[str, float] | None = None
    # failures that did not fail again when Hypothesis replayed their example: seen once, not findings
    unconfirmed: list[str] = field(default_factory=list)

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """As fuzz.json holds it: with the ledger requirement fuzzing checks, and each finding's case id and file
        (what compliance.json's robustness section reads, without importing this room)."""
        findings = [{**asdict(f), "case": f.case_id(n), "file": f.file(n)} for n, f in enumerate(self.findings, 1)]
        return {
            **asdict(self),
            "requirement": INTERFACE_REQUIREMENTS[self.interface],
            "examples_per_second": round(self.examples_per_second, 2),
            "findings": findings,
        }


def write_findings(folder: Path, findings: list[Finding], sut: str, start: int = 1) -> list[Path]:
    """Each finding as `findings/<interface>-<n>.yaml` under `folder` (numbered per interface from `start`)."""
    out = Path(folder) / "findings"
    out.mkdir(parents=True, exist_ok=True)
    counters: dict[str, int] = {}
    paths = []
    for finding in findings:
        n = counters.get(finding.interface, start)
        counters[finding.interface] = n + 1
        path = Path(folder) / finding.file(n)
        header = f"# {finding.oracle}: {finding.summary}\n# seed {finding.seed}; evidence {finding.pcap or '-'}\n"
        body = yaml.safe_dump(finding.case(n, sut), sort_keys=False, allow_unicode=True, width=120)
        path.write_text(header + body, encoding="utf-8")
        paths.append(path)
    return paths


def write_fuzz_json(folder: Path, reports: list[FuzzReport], **extra: Any) -> Path:
    """`fuzz.json`: one entry per interface fuzzed (examples, seconds, seed, findings) plus `extra` (profile...)."""
    path = Path(folder) / "fuzz.json"
    data = {**extra, "interfaces": [report.to_dict() for report in reports]}
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def read_fuzz_json(path: Path) -> list[FuzzReport]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    reports = []
    for entry in data.get("interfaces", []):
        entry = {k: v for k, v in entry.items() if k not in ("examples_per_second", "requirement")}
        fields = set(Finding.__dataclass_fields__)
        findings = [Finding(**{k: v for k, v in f.items() if k in fields}) for f in entry.pop("findings", [])]
        reports.append(FuzzReport(**entry, findings=findings))
    return reports
