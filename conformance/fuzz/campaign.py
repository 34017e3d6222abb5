"""One fuzz campaign into a run folder, the same folder a conformance run writes.

Each interface is fuzzed in turn; each finding is written as its case (findings/<interface>-<n>.yaml) and replayed
once through the engine, so that it is a result line (results.jsonl) with its pcap like any case; fuzz.json keeps
what each interface's fuzzer did (examples, seconds, seed, time to the first finding) and the Hypothesis database
lives in hypothesis-db/ so the same seed replays. compliance.json then carries them as its `robustness` section
(report/compliance.py), and report.html shows it. `best-conformance fuzz` (run.fuzz_campaign, against a reference
that embedded.restartable_reference restarts after a crash) and the pytest option `--best-fuzz` both come here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.engine.results import Result, ResultsFile
from conformance.fuzz.findings import FuzzReport, FuzzSetupError, write_findings, write_fuzz_json
from conformance.fuzz.replay import replay_finding
from conformance.profile import LoadedProfile

INTERFACES = ("emsdp", "key_server")


@dataclass
class Budget:
    """How much to fuzz each interface: examples (None: each fuzzer's default) or seconds, and the seed."""

    examples: int | None = None
    seconds: float | None = None
    seed: int = 0

    def options(self) -> dict[str, Any]:
        return {**({"examples": self.examples} if self.examples else {}), "seconds": self.seconds, "seed": self.seed}


@dataclass
class Sut:
    """The SUT being fuzzed: its profile of the moment and, for an embedded reference, how to start a fresh one
    after a crash (so a crash shrinks like any finding) and the certificates it was issued."""

    profile: LoadedProfile
    restart: Callable[[], LoadedProfile] | None = None
    certs: Any = None
    reference: bool = False  # a reference on this host: its reaction windows are short (emsdp.REFERENCE_*)


def fuzz_interfaces(sut: Sut, interfaces: list[str], run_dir: Path, budget: Budget) -> list[FuzzReport]:
    """Fuzz each interface against `sut` into run_dir: findings/, their replays in results.jsonl and pcaps/,
    hypothesis-db/, fuzz.json (rewritten after each interface, so an interrupted campaign keeps what it did)."""
    from conformance.fuzz.emsdp import REFERENCE_TIMEOUT, REFERENCE_WINDOW, Target, fuzz_emsdp

    results = ResultsFile(run_dir / "results.jsonl")
    reports: list[FuzzReport] = []
    numbers = {interface: iter(range(1, 1_000_000)) for interface in interfaces}
    for interface in interfaces:
        database = run_dir / "hypothesis-db" / interface

        def replay(finding: Any, interface: str = interface) -> Result:
            result = replay_finding(finding, next(numbers[interface]), sut.profile, run_dir, certs=sut.certs)
            results.append(result)
            return result

        if interface == "emsdp":
            serves_before(sut.profile)
            target = Target(
                sut.profile,
                restart=sut.restart,
                window=REFERENCE_WINDOW if sut.reference else None,
                timeout=REFERENCE_TIMEOUT if sut.reference else None,
            )
            report = fuzz_emsdp(target, database=database, replay=lambda f: replay(f).pcap, **budget.options())
            sut.profile = target.profile  # restarted after a crash: the SUT of the moment
        else:
            from conformance.fuzz.keyserver import fuzz_key_server

            report = fuzz_key_server(sut.profile, database=database, out=run_dir, certs=sut.certs, **budget.options())
            for finding in report.findings:  # the case each finding is written as, run once: its result line
                replay(finding)
        reports.append(report)
        write_findings(run_dir, report.findings, sut.profile.sut.kind)
        write_fuzz_json(run_dir, reports, profile=str(sut.profile.path) if sut.profile.path else None)
    return reports


def serves_before(profile: LoadedProfile) -> None:
    """A fresh session completes before the first example, else FuzzSetupError: a SUT dead from the start is not
    a finding of fuzzing."""
    from conformance.fuzz.emsdp import make_ue
    from conformance.roles.errors import PortUnreachable, ProtocolError

    with make_ue(profile, 0, profile.pixit.reply_timeout) as ue:
        try:
            ue.start()
        except (PortUnreachable, ProtocolError, ValueError) as exc:
            raise FuzzSetupError(f"the HSE does not serve a session before fuzzing ({exc})") from None
