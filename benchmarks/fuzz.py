"""Fuzzing speed and time to find (issue 17): for the conformant references, examples per second on each interface;
for each fault only fuzzing finds (faults.yaml found_by), the examples and seconds until Hypothesis first saw it,
the whole run with shrinking, and the length of the shrunk case. Default budgets, seed 0.

    python benchmarks/fuzz.py [SEED]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conformance.embedded import restartable_reference
from conformance.faults import CATALOGUE
from conformance.fuzz.campaign import Budget, fuzz_interfaces
from conformance.profile import load_profile, shipped_profile

PROFILES = {"emsdp": "reference-hse.yaml", "key_server": "reference-emks.yaml"}


def campaign(interface: str, faults: frozenset[str], seed: int) -> tuple[object, float]:
    profile = load_profile(shipped_profile(PROFILES[interface]))
    with tempfile.TemporaryDirectory() as folder, restartable_reference(profile, faults) as sut:
        started = time.perf_counter()
        (report,) = fuzz_interfaces(sut, [interface], Path(folder), Budget(seed=seed))
        return report, time.perf_counter() - started


def main(seed: int = 0) -> None:
    for interface in PROFILES:
        report, wall = campaign(interface, frozenset(), seed)
        print(
            f"{interface}, conformant reference: {report.examples} examples in {wall:.1f} s = "
            f"{report.examples / wall:.1f} examples/s; {len(report.findings)} finding(s)"
        )
    for fault in (f for f in CATALOGUE if f.found_by):
        interface = fault.found_by[0]
        if interface not in PROFILES:
            continue
        report, wall = campaign(interface, frozenset({fault.name}), seed)
        found = report.found_after or {}
        steps = len(report.findings[0].steps) if report.findings else 0
        print(
            f"{fault.name} ({interface}): first seen after {found.get('examples', '-')} examples, "
            f"{found.get('seconds', '-')} s; {len(report.findings)} finding(s), shrunk to {steps} steps; "
            f"whole run {wall:.1f} s"
        )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
