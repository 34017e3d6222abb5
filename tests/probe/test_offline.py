"""The offline probe on captures of the harness's UE role with reference HSEs that read the binding otherwise
(issue 16): each override is recovered exactly, alone and five at once; a default SUT shows no difference and no
false alternative; a capture that fits no candidate names the message; the override file loads and interoperates."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.binding import load_binding
from conformance.capture.tap import PcapTap
from conformance.probe.offline import AMBIGUOUS, CONTRADICTED, DEFAULT, INFERRED, UNDECIDED, probe_captures
from conformance.probe.report import write_outputs
from conformance.roles.errors import NoReply, ProtocolError
from tests.probe.sut import (
    COUNT_MSB,
    FIVE,
    HEADER_ORDER,
    KINT_INT_FC,
    MAC_LSB,
    RAND_TAG,
    capture_exchange,
    running_sut,
)

# the seed 003 numbering moves three tags at once (each alone collides with another tag); the UP ciphering key's
# FC shows only in a confidential session
TAG_SET = {"emsdp.tlv.tags.rand": 0x06, "emsdp.tlv.tags.autn": 0x07, "emsdp.tlv.tags.hse_config": 0x08}
CIPHERING_FC = {"keys.derivations.ke2m_enc.fc": 0x69}
COVERS_BODY = {"protection.mac.covers": "body", "keys.derivations.ke2m_int.fc": 0x15}


def differences(result) -> dict:
    return {f.key: f.value for f in result.differences}


def probed(tmp_path: Path, overrides: dict, *, confidential: bool = False):
    with running_sut(overrides) as (running, profile):
        pcap = capture_exchange(running, tmp_path / "exchange.pcap", confidential=confidential)
        return probe_captures([pcap], profile), profile, pcap


@pytest.mark.parametrize(
    "overrides",
    [COUNT_MSB, MAC_LSB, KINT_INT_FC, RAND_TAG, HEADER_ORDER, TAG_SET, COVERS_BODY],
    ids=["count-msb", "mac-lsb", "kint-int-fc", "rand-tag", "header-order", "tag-set", "covers-body"],
)
def test_a_single_override_is_recovered_exactly(tmp_path, overrides):
    result, _, _ = probed(tmp_path, overrides)
    assert result.consistent
    assert differences(result) == overrides
    for key in overrides:
        evidence = result.findings[key].evidence
        assert evidence and evidence["frame"] > 0 and len(evidence["pcap_sha256"]) == 64


def test_five_overrides_at_once_are_recovered_and_the_inferred_binding_interoperates(tmp_path):
    result, _profile, _pcap = probed(tmp_path, FIVE)
    assert result.consistent
    assert differences(result) == FIVE
    paths = write_outputs(result, tmp_path / "probe")
    inferred = load_binding(paths["override"])
    assert {key: inferred[key] for key in FIVE} == FIVE
    assert inferred.param("protection.count.align").source.startswith("inferred by probe from ")
    # the inferred binding, given to the harness's UE, carries a whole exchange with the SUT; the default does not
    with running_sut(FIVE) as (running, _):
        capture_exchange(_as(running, paths["override"]), tmp_path / "again.pcap")
        with pytest.raises((NoReply, ProtocolError)):
            capture_exchange(_as(running, None), tmp_path / "default.pcap")


def _as(running, override: Path | None):
    """The running SUT as the harness sees it under a binding: the override file's, or the default."""
    from conformance.profile import LoadedProfile

    return LoadedProfile(running.profile, load_binding(override) if override else load_binding(), None)


def test_a_confidential_session_decides_the_ciphering_key(tmp_path):
    result, _, _ = probed(tmp_path, {**RAND_TAG, **CIPHERING_FC}, confidential=True)
    assert result.consistent
    assert differences(result) == {**RAND_TAG, **CIPHERING_FC}


def test_a_default_sut_shows_no_difference_and_no_false_alternative(tmp_path):
    result, _, _ = probed(tmp_path, {})
    assert result.consistent
    assert differences(result) == {}
    statuses = {f.key: f.status for f in result.findings.values()}
    assert set(statuses.values()) <= {DEFAULT, UNDECIDED}
    assert statuses["protection.count.align"] == statuses["emsdp.header.fields"] == DEFAULT
    # what the capture cannot tell is said, not guessed: the SUT never sends RES, and no session was confidential
    assert statuses["emsdp.tlv.tags.res"] == UNDECIDED
    assert statuses["keys.derivations.ke2m_enc.fc"] == UNDECIDED
    assert AMBIGUOUS not in statuses.values()


def test_macs_made_under_no_candidate_name_the_contradicting_message(tmp_path):
    """COUNT's fields in another order: a reading the binding names no alternative for. Every protected message
    the SUT made or accepted contradicts every candidate; the first is named."""
    result, _, pcap = probed(tmp_path, {"protection.count.layout": ["counter", "session_id", "direction"]})
    assert not result.consistent
    first = result.contradictions[0]
    assert first["pcap"] == str(pcap) and first["frame"] > 2  # the first protected message the SUT made or answered
    assert "MAC verifies under no candidate" in first["what"]
    assert result.findings["protection.count.align"].status == CONTRADICTED
    assert result.findings["protection.count.align"].evidence["frame"] == first["frame"]


def test_a_garbage_datagram_from_the_sut_is_named(tmp_path):
    with running_sut({}) as (running, profile):
        pcap = tmp_path / "garbage.pcap"
        host, port = running.hse_endpoint
        with PcapTap(pcap) as tap:
            tap.record(bytes.fromhex("ffffffff00"), (host, port), (host, 40000))
        result = probe_captures([pcap], profile)
    assert not result.consistent
    assert result.contradictions[0]["frame"] == 1
    assert "fits no candidate layout" in result.contradictions[0]["what"]
    assert result.differences == []  # too short for a header under any layout: no parameter is judged on it
    assert {f.status for f in result.findings.values()} <= {CONTRADICTED, UNDECIDED}
    assert INFERRED not in {f.status for f in result.findings.values()}
