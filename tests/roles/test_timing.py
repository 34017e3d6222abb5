"""Reply timeouts and silence windows (roles/timing.py): fixed for a lab's SUT unless its PIXIT says otherwise,
derived from the measured round trip for the harness's own references, never longer than the fixed ones."""

from __future__ import annotations

import itertools

import pytest

from conformance.profile import load_profile
from conformance.roles import timing
from conformance.roles.timing import FACTOR, REPLY_FLOOR, SAMPLES, SILENCE_FLOOR, Timing
from tests.test_run_command import ROOT

PORTS = itertools.count(50000)


def endpoint() -> tuple[str, int]:
    return ("192.0.2.1", next(PORTS))  # a fresh endpoint: no round trips measured yet


def test_fixed_timing_is_the_profiles_whatever_was_measured():
    where = endpoint()
    timing.record(where, 0.001)
    fixed = Timing(where, reply_timeout=2.0)
    assert (fixed.reply(), fixed.silence(0.3), fixed.silence(None)) == (2.0, 0.3, 2.0)


def test_a_labs_silence_window_cuts_the_cases_windows_only():
    fixed = Timing(endpoint(), reply_timeout=2.0, silence_window=0.05)
    assert (fixed.reply(), fixed.silence(0.3), fixed.silence(0.01)) == (2.0, 0.05, 0.01)


def test_measured_timing_follows_the_slowest_recent_round_trip_within_floors_and_fixed_values():
    where = endpoint()
    measured = Timing(where, reply_timeout=1.0, measured=True)
    assert (measured.reply(), measured.silence(0.3)) == (1.0, 0.3)  # nothing measured yet: the fixed values
    timing.record(where, 0.001)
    assert (measured.reply(), measured.silence(0.3)) == (REPLY_FLOOR, SILENCE_FLOOR)
    timing.record(where, 0.01)
    assert measured.reply() == pytest.approx(max(REPLY_FLOOR, FACTOR * 0.01))
    assert measured.silence(0.3) == pytest.approx(max(SILENCE_FLOOR, FACTOR * 0.01))
    timing.record(where, 0.5)  # one slow answer: back to the fixed values, never beyond
    assert (measured.reply(), measured.silence(0.3)) == (1.0, 0.3)
    for _ in range(SAMPLES):  # until it ages out
        timing.record(where, 0.001)
    assert measured.reply() == REPLY_FLOOR


def test_a_profile_says_fixed_unless_told_and_the_embedded_reference_measures():
    from conformance.embedded import embedded_reference

    shipped = load_profile(ROOT / "profiles/reference-hse.yaml")
    assert shipped.pixit.timing == "fixed" and shipped.pixit.silence_window is None
    with embedded_reference(shipped) as (running, _):
        assert running.pixit.timing == "measured"
