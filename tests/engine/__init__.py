"""Helpers shared by the suite tests. The logic lives in conformance.selftest, one home with `selftest`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from conformance.engine.model import Case
from conformance.profile import LoadedProfile
from conformance.selftest import explain, failing_verdict, missed_catchers, run_against_reference

__all__ = ["assert_fault_caught", "explain", "failing_verdict", "run_against_reference"]


def assert_fault_caught(
    profile: LoadedProfile, by_id: Mapping[str, Case], case_ids: list[str], fault: str, out: Path
) -> None:
    """Each catching case gets its failing verdict against the reference with this single fault on."""
    results = run_against_reference(profile, (by_id[i] for i in case_ids), out, frozenset({fault}))
    missed = missed_catchers(dict(by_id), results, case_ids)
    assert not missed, f"{fault} not caught: {missed}"
