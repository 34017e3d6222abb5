"""A finding replayed once more as the case it is written as (findings.py), through the engine: the evidence
(its pcap) and the proof that the written case reproduces what the fuzzer saw."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

from conformance.engine.lint import load_suite
from conformance.engine.runner import run_case
from conformance.fuzz.findings import Finding
from conformance.profile import LoadedProfile


def replay_finding(
    finding: Finding, n: int, profile: LoadedProfile, out: Path, *, certs: Any = None
) -> tuple[str | None, str]:
    """Run the finding's case (id FUZZ-<IF>-<n>) against the SUT `profile` points at, its pcap under
    out/pcaps/; returns (the pcap's path, the verdict and reason)."""
    case_data = finding.case(n, profile.sut.kind)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "finding.yaml"
        path.write_text(yaml.safe_dump([case_data], sort_keys=False), encoding="utf-8")
        cases, lint = load_suite([path], profile.binding)
    if lint.errors or not cases:
        return None, f"not replayed: the case does not lint: {'; '.join(lint.errors) or 'no case'}"
    result = run_case(cases[0], profile, out, certs=certs)
    return result.pcap, f"{result.verdict.value}: {result.reason}"
