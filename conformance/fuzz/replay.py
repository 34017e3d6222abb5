"""A finding replayed once more as the case it is written as (findings.py), through the engine: the evidence
(its pcap) and the proof that the written case reproduces what the fuzzer saw."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

from conformance.engine.lint import load_suite
from conformance.engine.results import Result, Verdict
from conformance.engine.runner import run_case
from conformance.fuzz.findings import Finding
from conformance.profile import LoadedProfile


def replay_finding(finding: Finding, n: int, profile: LoadedProfile, out: Path, *, certs: Any = None) -> Result:
    """Run the finding's case (id FUZZ-<IF>-<n>) against the SUT `profile` points at, its pcap under
    out/pcaps/: the case's result (its pcap the evidence); an error result if the case does not lint."""
    case_data = finding.case(n, profile.sut.kind)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "finding.yaml"
        path.write_text(yaml.safe_dump([case_data], sort_keys=False), encoding="utf-8")
        cases, lint = load_suite([path], profile.binding)
    if lint.errors or not cases:
        why = f"not replayed: the case does not lint: {'; '.join(lint.errors) or 'no case'}"
        return Result(case_data["id"], case_data["title"], "should", case_data["refs"], Verdict.ERROR, why)
    return run_case(cases[0], profile, out, certs=certs)
