"""The harness's HSE (roles/hse.py) against the harness's own conformant UE role (roles/ue.Ue) over real UDP: a whole
session, SUCI de-concealment, AUTS resynchronisation, the misbehaviour it sends on purpose, and its datagram
hygiene. Steered step by step in one thread: UDP keeps each datagram until the other side reads it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from conformance.capture.tap import PcapTap
from conformance.crypto.aka import AutnOutcome
from conformance.emsdp.ue_side import suci_identity
from conformance.emsdp.values import tlv_values
from conformance.engine.peers import harness_hse_address
from conformance.profile import LoadedProfile, load_profile
from conformance.roles.datagrams import DUPLICATE, STALE
from conformance.roles.errors import LateReply, ProtocolError
from conformance.roles.hse import HarnessHse
from conformance.roles.ue import Credentials, Ue

ROOT = Path(__file__).resolve().parents[2]


def ue_profile(**pixit: object) -> LoadedProfile:
    """The reference HSE's test data as a UE under test's profile: the harness's HSE on a free port."""
    data = yaml.safe_load((ROOT / "profiles" / "reference-hse.yaml").read_text())
    data["sut"]["kind"] = "ue"
    data["endpoints"] = {"hse": {"host": "127.0.0.1", "port": 0}}
    data["pixit"].update(pixit)
    data.pop("reference", None)
    return load_profile(data)


def harness_hse(profile: LoadedProfile) -> HarnessHse:
    return HarnessHse(profile.binding, profile.pixit, profile.pics, harness_hse_address(profile))


@pytest.fixture
def profile() -> LoadedProfile:
    return ue_profile()


@pytest.fixture
def hse(profile, tmp_path):
    with harness_hse(profile) as hse:
        hse.attach(PcapTap(tmp_path / "case.pcap"))
        yield hse


def make_ue(profile: LoadedProfile, hse: HarnessHse, sqn: bytes | None = None) -> Ue:
    credentials = Credentials.from_subscriber(profile.pixit.subscribers[0])
    if sqn is not None:
        credentials = Credentials(credentials.imsi, credentials.k, credentials.opc, sqn)
    pixit = profile.pixit
    return Ue(
        profile.binding,
        credentials,
        hse.address,
        snn=pixit.serving_network_name,
        sn_id=pixit.serving_network_id,
        eas_id=pixit.eas_id,
        timeout=1.0,
    )


def open_session(ue: Ue, hse: HarnessHse, **start: str) -> None:
    ue.session_request(confidentiality=True)
    hse.expect("session_request")
    hse.session_start(**start)
    assert ue.accept_session_start(ue.expect("session_start")).outcome is AutnOutcome.OK
    ue.confirm()
    confirmation = hse.expect("session_start_confirmation")
    assert hse.res_correct(tlv_values(confirmation)["res"]) and hse.accept(confirmation)
    hse.confirmed(confirmation)


def test_binds_a_free_port_and_records_into_the_case_pcap(profile, tmp_path):
    with harness_hse(profile) as hse:
        assert hse.address[0] == "127.0.0.1" and hse.address[1] > 0
        tap = PcapTap(tmp_path / "one.pcap")
        hse.attach(tap)
        with make_ue(profile, hse) as ue:
            ue.session_request()
            hse.expect("session_request")
        hse.detach()
        assert [d[4] for d in tap.datagrams(hse.address[1])] == [ue.last_request]


def test_a_whole_session_with_a_conformant_ue(profile, hse):
    with make_ue(profile, hse) as ue:
        open_session(ue, hse)
        session = hse.session
        assert session.confirmed and session.service == "up_confidential" and ue.session.checksum_ok
        assert ue.session.keys == session.keys  # both sides derived the same keys from the same run
        hse.send(hse.user_data(b"down"), session)
        assert ue.check_downlink(ue.expect(None)) == b"down"
        ue.send(ue.user_data(b"up"))
        uplink = hse.expect("user_data")
        assert hse.fresh(uplink) and hse.accept(uplink) and hse.plaintext(uplink) == b"up"
        assert uplink.data != b"up"  # ciphered
        assert not hse.fresh(uplink)  # its counter is spent
        hse.send(hse.manage_keys_request(), session)
        ue.answer_manage_keys(ue.expect("manage_keys_request"))
        response = hse.expect("manage_keys_response")
        assert hse.verifies(response) and hse.res_correct(tlv_values(response)["res"])
        hse.confirmed(response)
        assert session.next_keys and session.next_keys != session.keys  # the next session's (seed 003)
        ue.send_protected("manage_keys_request", [])  # the UE asks: the HSE answers with a new challenge
        assert hse.verifies(hse.expect("manage_keys_request"))
        hse.send(hse.protected("session_terminate_request", []), session)
        ue.check_downlink(ue.expect("session_terminate_request"))
        ue.send_protected("session_terminate_response", [])
        assert hse.verifies(hse.expect("session_terminate_response"))
        hse.end("terminated")
        ue.session_request()  # a new session replaces it: what still comes on the old one is stale
        hse.expect("session_request")
        hse.session_start()
        assert hse.session.id != session.id
        ue.send(ue.user_data(b"late"))
        assert hse.receive(0.2) is None
        assert [n["kind"] for n in hse.notes] == [STALE]


@pytest.mark.parametrize("profile_name", ["A", "B"])
def test_a_suci_is_de_concealed_to_the_subscriber_imsi(profile, hse, profile_name):
    key = next(k for k in profile.pixit.home_network_keys if k.profile == profile_name)
    with make_ue(profile, hse) as ue:
        _, suci = suci_identity(hse.layout, ue.credentials.imsi, key.id, key.public_key, profile_name)
        ue.session_request(identity="suci", suci=suci)
        assert hse.identity(hse.expect("session_request")) == ("suci", ue.credentials.imsi, "")
        ue.session_request(identity="suci", suci=suci[:-1] + bytes([suci[-1] ^ 1]))  # MAC tag off
        kind, imsi, why = hse.identity(hse.receive(1.0))
        assert (kind, imsi) == ("suci", None) and "MAC" in why


def test_an_auts_resynchronises_the_hse_sqn(profile, hse):
    ahead = (int.from_bytes(profile.pixit.subscribers[0].sqn, "big") + (40 << 5)).to_bytes(6, "big")
    with make_ue(profile, hse, sqn=ahead) as ue:
        ue.session_request()
        hse.expect("session_request")
        hse.session_start()
        start = ue.expect("session_start")
        check = ue.accept_session_start(start)
        assert check.outcome is AutnOutcome.SYNCH_FAILURE
        ue.send_auts(check.auts, start.session_id)
        confirmation = hse.expect("session_start_confirmation")
        assert confirmation.key_id == 0
        assert hse.resynchronise(bytes(a ^ 1 for a in check.auts)) is not None  # a forged AUTS does not verify
        assert hse.resynchronise(tlv_values(confirmation)["auts"]) is None
        hse.session_start()  # again, on the same session, past the USIM's SQN
        again = ue.expect("session_start")
        assert again.session_id == start.session_id
        assert ue.accept_session_start(again).outcome is AutnOutcome.OK


@pytest.mark.parametrize(
    ("autn", "outcome"), [("bad_mac", AutnOutcome.MAC_FAILURE), ("sqn_out_of_range", AutnOutcome.SYNCH_FAILURE)]
)
def test_a_wrong_autn_is_what_the_usim_refuses(profile, hse, autn, outcome):
    with make_ue(profile, hse) as ue:
        ue.session_request()
        hse.expect("session_request")
        hse.session_start(autn=autn)
        assert ue.accept_session_start(ue.expect("session_start")).outcome is outcome


def test_downlink_misbehaviour_is_what_the_ue_refuses(profile, hse):
    with make_ue(profile, hse) as ue:
        open_session(ue, hse)
        session = hse.session
        message = hse.user_data(b"once")
        hse.send(message, session)
        ue.check_downlink(ue.expect(None))
        hse.send(session.sent["user_data"], session)  # replayed: octet for octet, its counter spent
        assert ue.receive(0.2) is None and ue.notes[-1]["kind"] == DUPLICATE
        forged = hse.user_data(b"forged")
        hse.send(forged.with_mac(bytes([forged.mac[0] ^ 1]) + forged.mac[1:]), session)
        with pytest.raises(ProtocolError, match="MAC"):
            ue.check_downlink(ue.expect(None))
        stale = hse.with_key_id(hse.user_data(b"stale"), 2)
        assert stale.key_id == 2 and hse.security.verify(stale, session.keys, "downlink")  # only the Key ID is off
        assert hse.unknown_command_code() not in hse.layout.command_names()


def test_hygiene_sets_aside_duplicates_and_what_came_before_the_case(profile, hse, tmp_path):
    with make_ue(profile, hse) as ue:
        ue.session_request()
        hse.attach(PcapTap(tmp_path / "next.pcap"))  # the next case: that request is not its
        assert hse.receive(0.1) is None and [n["kind"] for n in hse.notes] == [STALE]
        ue.session_request()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.sendto(ue.last_request, hse.address)  # the network's copy
        sock.close()
        hse.expect("session_request")
        assert hse.receive(0.1) is None and hse.notes[-1]["kind"] == DUPLICATE
        hse.triggered()  # a trigger: the same request again is a new one
        ue.session_request()
        hse.expect("session_request")


def test_a_datagram_after_a_silence_window_is_not_judged(profile, hse):
    with make_ue(profile, hse) as ue:
        ue.session_request()
        hse.triggered()  # the request came before the case's last action: not a reaction
        assert hse.wire.expect_silence(0.05, "the window") is None
        ue.session_request()
        with pytest.raises(LateReply, match="silence is not judged"):
            hse.wire.check_judged()
