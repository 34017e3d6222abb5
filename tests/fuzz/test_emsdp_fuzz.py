"""EMSDP fuzzing (conformance/fuzz/emsdp.py) against the embedded reference HSE: the two faults only fuzzing finds
(faults.yaml found_by) are found within the default budget and shrunk to a short replayable sequence; the
conformant reference gives no finding; the mutations are the binding's."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from conformance.embedded import restartable_reference
from conformance.emsdp.codec import Codec
from conformance.faults import BY_NAME
from conformance.fuzz.emsdp import (
    DEFAULT_EXAMPLES,
    MUTATIONS,
    REFERENCE_TIMEOUT,
    REFERENCE_WINDOW,
    Target,
    fuzz_emsdp,
    make_ue,
    mutate,
)
from conformance.fuzz.replay import replay_finding
from conformance.profile import load_profile

PROFILE = load_profile(Path(__file__).resolve().parents[2] / "profiles" / "reference-hse.yaml")
CRASH = "hse_crashes_on_empty_ue_config"
SKIPPED_MAC = "hse_skips_mac_on_terminate_after_manage_keys"


@contextlib.contextmanager
def reference(*faults: str):
    """A Target on an embedded reference HSE with these faults, restarted after a crash (as `fuzz --reference`)."""
    with restartable_reference(PROFILE, frozenset(faults)) as sut:
        yield Target(sut.profile, restart=sut.restart, window=REFERENCE_WINDOW, timeout=REFERENCE_TIMEOUT)


def test_the_fuzz_faults_are_catalogued_as_found_by_fuzzing_only():
    assert BY_NAME[CRASH].found_by == ("emsdp",) and BY_NAME[CRASH].dead == ("emsdp",) and not BY_NAME[CRASH].caught_by
    assert BY_NAME[SKIPPED_MAC].found_by == ("emsdp",) and not BY_NAME[SKIPPED_MAC].dead


@pytest.mark.slow  # a whole fuzz run with shrinking: 25 to 50 s
def test_a_mac_skipped_on_terminate_while_rekeying_is_found_and_shrunk(tmp_path):
    with reference(SKIPPED_MAC) as target:
        report = fuzz_emsdp(target, seed=0, database=tmp_path / "db")
    assert report.examples and report.seed == 0 and len(report.findings) == 1, report
    finding = report.findings[0]
    assert finding.oracle == "no_action_on_forged" and "session_terminate_response" in finding.summary
    assert report.found_after and report.found_after["examples"] <= DEFAULT_EXAMPLES
    steps = finding.steps
    assert len(steps) <= 14, steps  # at times a redundant Manage Keys round stays in
    assert {"expect": "manage_keys_request"} in steps  # the state: Manage Keys pending
    forged = [s for s in steps if s.get("send") == "session_terminate_request" and "with" in s]
    assert forged and forged[-1]["with"] == {"mac": "corrupt"}, steps


@pytest.mark.slow
def test_the_same_seed_gives_the_same_finding(tmp_path):
    runs = []
    for _ in range(2):
        with reference(SKIPPED_MAC) as target:
            runs.append(fuzz_emsdp(target, seed=3, database=None).findings)
    assert runs[0] == runs[1] and runs[0]


@pytest.mark.slow  # a whole fuzz run with shrinking: 25 to 50 s
def test_a_crash_on_an_empty_ue_config_is_found_shrunk_and_replays(tmp_path):
    with reference(CRASH) as target:
        report = fuzz_emsdp(
            target,
            seed=1,
            database=tmp_path / "db",
            replay=lambda f: replay_finding(f, 1, target.profile, tmp_path).pcap,
        )
        assert len(report.findings) == 1, report
        finding = report.findings[0]
        assert finding.oracle == "still_serves"
        # each shrink step of a crash restarts the reference: within the shrink budget it is short, not always minimal
        assert len(finding.steps) <= 20 and finding.steps[-1] == {"probe": "session"}, finding.steps
        raw = bytes.fromhex([s for s in finding.steps if s.get("send") == "raw"][-1]["with"]["hex"])
        message = Codec(PROFILE.binding).decode(raw)
        assert any(t.name == "ue_config" and t.length == 0 for t in message.tlvs)  # the minimal trigger
        assert finding.pcap and Path(finding.pcap).is_file()  # the evidence: the shrunk case replayed
        target.ensure_alive()
        replayed = replay_finding(finding, 2, target.profile, tmp_path)
    assert replayed.verdict.value == "warn", replayed.reason  # the case (level should) fails its proof of life


def test_the_conformant_reference_gives_no_finding_over_the_default_budget(tmp_path):
    with reference() as target:
        report = fuzz_emsdp(target, seed=0, database=tmp_path / "db")
    assert report.findings == [] and report.examples >= DEFAULT_EXAMPLES and report.found_after is None


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_the_conformant_reference_gives_no_finding_over_a_longer_budget(tmp_path, seed):
    with reference() as target:
        report = fuzz_emsdp(target, examples=4 * DEFAULT_EXAMPLES, seed=seed, database=None)
    assert report.findings == []


def test_a_time_budget_stops_new_examples():
    with reference() as target:
        report = fuzz_emsdp(target, seconds=1.0, seed=0)
    assert report.findings == [] and report.examples >= 25 and report.seconds < 10


# ---- the mutations, with the binding's codec ----------------------------------------------------------------


@pytest.fixture(scope="module")
def ue():
    with make_ue(PROFILE, 0, 0.1) as ue:
        yield ue


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_every_mutation_changes_the_session_request(ue, mutation):
    request = ue.build_session_request()
    raw = mutate(ue.codec, request, mutation, 1, 17, protected=False)
    assert raw != bytes(request)


def test_the_tlv_mutations_are_what_they_say(ue):
    request = ue.build_session_request()
    tlvs = request.tlvs
    decoded = ue.codec.decode(mutate(ue.codec, request, "length_zero", 1, 0, protected=False))
    assert decoded.tlvs[1].length == 0 and decoded.tlvs[1].tag == tlvs[1].tag and len(decoded.tlvs) == len(tlvs)
    decoded = ue.codec.decode(mutate(ue.codec, request, "missing", 0, 0, protected=False))
    assert [t.tag for t in decoded.tlvs] == [t.tag for t in tlvs[1:]]
    decoded = ue.codec.decode(mutate(ue.codec, request, "repeated", 2, 0, protected=False))
    assert [t.tag for t in decoded.tlvs].count(tlvs[2].tag) == 2
    decoded = ue.codec.decode(mutate(ue.codec, request, "unknown_tag", 0, 0, protected=False))
    assert decoded.tlvs[0].name is None and any("unknown tag" in p for p in decoded.problems)
    decoded = ue.codec.decode(mutate(ue.codec, request, "length_max", 0, 0, protected=False))
    assert any(p.startswith("truncated TLV") for p in decoded.problems)
