"""The live probe against reference HSEs that read the binding otherwise: it recovers the overrides in a few
sessions, its evidence is its own pcap (the offline probe reads it), and it stays within its bounds."""

from __future__ import annotations

import pytest

from conformance.probe.live import ProbeAborted, probe_live
from conformance.probe.offline import UNDECIDED, probe_captures
from tests.probe.sut import FIVE, running_sut

TAG_SET_AND_CIPHERING = {
    "emsdp.tlv.tags.rand": 0x06,
    "emsdp.tlv.tags.autn": 0x07,
    "emsdp.tlv.tags.hse_config": 0x08,
    "keys.derivations.ke2m_enc.fc": 0x69,
}


def differences(result) -> dict:
    return {f.key: f.value for f in result.differences}


def test_five_differences_live_in_a_few_sessions(tmp_path):
    lines: list[str] = []
    with running_sut(FIVE) as (_running, profile):
        result = probe_live(profile, tmp_path / "probe", say=lines.append)
        offline = probe_captures([result.live["pcap"]], profile)
    assert result.consistent
    assert differences(result) == FIVE
    assert result.live["sessions"] <= 3 and result.live["seconds"] < 30
    assert lines and any("verifies" in line for line in lines)
    assert differences(offline) == FIVE  # the live probe's evidence is the offline probe's input


def test_tags_that_move_together_and_the_ciphering_key_live(tmp_path):
    with running_sut(TAG_SET_AND_CIPHERING) as (_running, profile):
        result = probe_live(profile, tmp_path / "probe")
    assert differences(result) == TAG_SET_AND_CIPHERING


def test_a_default_sut_live_shows_no_difference(tmp_path):
    with running_sut({}) as (_running, profile):
        result = probe_live(profile, tmp_path / "probe")
    assert result.consistent and differences(result) == {}
    assert {f.key for f in result.findings.values() if f.status == UNDECIDED} == {"emsdp.tlv.tags.res"}
    assert result.live["sessions"] == 2  # the set-up and, the SUT claiming it, a confidential session


def test_max_sessions_bounds_the_probe(tmp_path):
    with running_sut({}) as (_running, profile):
        result = probe_live(profile, tmp_path / "probe", max_sessions=1)
    assert result.live["sessions"] == 1
    assert result.findings["keys.derivations.ke2m_enc.fc"].status == UNDECIDED


def test_nobody_listening_aborts(tmp_path):
    with running_sut({}) as (_running, profile):
        pass  # stopped: its port is closed now
    with pytest.raises(ProbeAborted, match="does not listen"):
        probe_live(profile, tmp_path / "probe")
