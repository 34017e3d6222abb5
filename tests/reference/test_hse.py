"""The reference HSE against the UE role over real UDP: every procedure, and the rejections."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest
import yaml

from conformance.crypto.suci import Suci, build_suci, conceal, encode_msin
from conformance.emsdp.values import decode_hse_config
from conformance.profile import load_profile
from conformance.reference.hse import HseServer
from conformance.roles.ue import Credentials, Ue, tlv_values

PROFILE_FILE = Path(__file__).resolve().parents[2] / "profiles" / "reference-hse.yaml"
PROFILE = load_profile(PROFILE_FILE)
EAS = "eas.example.com"


def profile_with(**reference):
    data = yaml.safe_load(PROFILE_FILE.read_text())
    data["reference"].update(reference)
    return data


@pytest.fixture(scope="module")
def hse():
    with HseServer(PROFILE, port=0) as server:
        yield server


def ue_for(server, subscriber=0, profile=PROFILE, **kwargs):
    sub = profile.pixit.subscribers[subscriber]
    return Ue(
        profile.binding,
        Credentials.from_subscriber(sub),
        server.address,
        snn=profile.pixit.serving_network_name,
        eas_id=kwargs.pop("eas_id", EAS),
        timeout=2.0,
        **kwargs,
    )


def cause_of(ue, packet):
    return ue.codec.describe(packet)["tlvs"][0]["decoded"]


def test_full_session_5g_aka_with_user_data_both_ways(hse):
    with ue_for(hse) as ue:
        session = ue.start()
        assert session.config["key_agreement"] == "5g_aka" and session.config["service"] == "up_integrity"
        assert session.checksum_ok and session.id != 0
        for n in range(2):
            ue.send(ue.user_data(b"reading %d" % n))
            assert ue.check_downlink(ue.expect(None)) == b"reading %d" % n
        ue.send_protected("session_terminate_request", [])
        ue.check_downlink(ue.expect("session_terminate_response"))
    assert session.id not in hse.protocol.sessions


def test_the_ue_and_the_eas_get_the_same_kint_eas_psk(hse):
    """The key cross-check: what the UE derived equals what the HSE hands the EAS for UE id + key id."""
    with ue_for(hse) as ue:
        session = ue.start()
        key_id = session.rand[-4:]  # default binding: 32 LSBs of RAND
        assert hse.protocol.eas_keys.lookup(EAS, ue.credentials.imsi, key_id) == session.keys["kint_eas_psk"]


def test_umts_when_the_ue_offers_no_5g(hse):
    with ue_for(hse) as ue:
        session = ue.start(key_agreements=("umts",), serving_network=False)
        assert session.config["key_agreement"] == "umts"


@pytest.mark.parametrize(("agreement", "root"), [("eps", "kasme"), ("eap_aka_prime", "khse_eap_aka_prime")])
def test_eps_and_eap_aka_prime_sessions_are_rooted_as_ts_33_163_5_says(hse, agreement, root):
    """EPS AKA roots the keys in KASME (SN id: the PIXIT's serving_network_id for its serving network name),
    EAP-AKA' in KHSE(0x64) from CK'||IK': the UE's echo verifies and the EAS gets the UE's key."""
    with ue_for(hse, sn_id=PROFILE.pixit.serving_network_id) as ue:
        session = ue.start(key_agreements=(agreement,))
        assert session.config["key_agreement"] == agreement and root in session.keys
        ue.send(ue.user_data(b"rooted"))
        assert ue.check_downlink(ue.expect(None)) == b"rooted"
        key_id = session.rand[-4:]  # default binding: 32 LSBs of RAND
        assert hse.protocol.eas_keys.lookup(EAS, ue.credentials.imsi, key_id) == session.keys["kint_eas_psk"]


def test_eps_needs_the_serving_network_and_the_subscribers_permission(hse):
    """Without a Serving Network TLV there is no SN id for KASME: UMTS AKA instead. A subscriber the PIXIT
    restricts to UMTS AKA is refused EPS AKA with cause service_not_allowed."""
    with ue_for(hse) as ue:
        assert ue.start(key_agreements=("eps", "umts"), serving_network=False).config["key_agreement"] == "umts"
    restricted = next(i for i, s in enumerate(PROFILE.pixit.subscribers) if s.key_agreements == ["umts"])
    with ue_for(hse, restricted) as ue:
        ue.session_request(key_agreements=("eps",))
        assert cause_of(ue, ue.expect("message_reject")) == "service_not_allowed"


def test_under_the_plmn_id_encoding_the_serving_network_tlv_is_the_sn_id():
    data = yaml.safe_load(PROFILE_FILE.read_text())
    data["binding"] = {"emsdp.serving_network.encoding": "plmn_id"}
    data["pixit"]["serving_network_name"] = "02f839"  # MCC 208, MNC 93, sent as the TLV's 3 octets
    profile = load_profile(data)
    with HseServer(profile, port=0) as server, ue_for(server, profile=profile) as ue:
        assert ue.sn_id == bytes.fromhex("02f839")
        ue.start(key_agreements=("eps",))
        ue.send(ue.user_data(b"plmn"))
        assert ue.check_downlink(ue.expect(None)) == b"plmn"


@pytest.mark.parametrize(("offer", "confidentiality"), [(("umts", "5g_aka"), False), (("umts",), True)])
def test_serving_network_is_mandatory_with_5g_or_confidentiality(hse, offer, confidentiality):
    """TS 33.163 6.2.6.1.1: present if the UE supports 5G authentication or asks for confidentiality."""
    with ue_for(hse) as ue:
        ue.session_request(key_agreements=offer, confidentiality=confidentiality, serving_network=False)
        reject = ue.expect("message_reject")
        assert cause_of(ue, reject) == "missing_mandatory_tlv"


def test_confidential_user_plane_is_ciphered_on_the_wire(hse):
    with ue_for(hse) as ue:
        session = ue.start(confidentiality=True)
        assert session.config["service"] == "up_confidential"
        message = ue.user_data(b"secret meter reading")
        assert b"secret meter reading" not in bytes(message)
        ue.send(message)
        echo = ue.expect(None)
        assert b"secret meter reading" not in bytes(echo)
        assert ue.check_downlink(echo) == b"secret meter reading"


def test_subscriber_without_confidentiality_gets_integrity_only(hse):
    with ue_for(hse, subscriber=1) as ue:
        assert ue.start(confidentiality=True).config["service"] == "up_integrity"


@pytest.mark.parametrize("profile_name", ["A", "B"])
def test_suci_is_deconcealed_with_the_home_network_key(hse, profile_name):
    key = next(k for k in PROFILE.pixit.home_network_keys if k.profile == profile_name)
    output = conceal(encode_msin("0123456789"), key.public_key, profile_name)
    suci = build_suci(Suci(0, "001", "01", "0", {"A": 1, "B": 2}[profile_name], key.id, output), "nas")
    with ue_for(hse) as ue:
        assert ue.start(identity="suci", suci=suci).checksum_ok


def test_key_agreement_only_releases_the_eas_key_on_confirmation():
    data = profile_with()
    data["pixit"]["subscribers"][0]["services"] = ["key_agreement_only"]
    profile = load_profile(data)
    with HseServer(profile, port=0) as server, ue_for(server, profile=profile) as ue:
        ue.session_request()
        start = ue.expect("session_start")
        config = decode_hse_config(ue.layout, tlv_values(start)["hse_config"])
        assert config["service"] == "key_agreement_only" and config["start_confirmation_required"]
        ue.accept_session_start(start)
        key_id = ue.session.rand[-4:]
        assert server.protocol.eas_keys.lookup(EAS, ue.credentials.imsi, key_id) is None
        ue.confirm()
        time.sleep(0.2)
        assert server.protocol.eas_keys.lookup(EAS, ue.credentials.imsi, key_id) == ue.session.keys["kint_eas_psk"]


def test_manage_keys_from_the_hse_takes_effect_at_the_next_session(hse):
    """Seed 003 (TS 33.163 4.3.3): new keys do not touch the running session; the EAS gets the new key."""
    with ue_for(hse) as ue:
        session = ue.start()
        for n in range(3):  # the reference profile rekeys after 3 UP messages
            ue.send(ue.user_data(b"%d" % n))
            ue.check_downlink(ue.expect(None))
        request = ue.expect("manage_keys_request")
        _, new_keys = ue.answer_manage_keys(request)
        ue.send(ue.user_data(b"after rekey"))  # still under the old keys
        assert ue.check_downlink(ue.expect(None)) == b"after rekey"
        new_id = tlv_values(request)["rand"][-4:]
        assert hse.protocol.eas_keys.lookup(EAS, ue.credentials.imsi, new_id) == new_keys["kint_eas_psk"]
        assert new_keys["kint_eas_psk"] != session.keys["kint_eas_psk"]


def test_manage_keys_from_the_ue(hse):
    with ue_for(hse) as ue:
        ue.start()
        ue.send_protected("manage_keys_request", [])
        check, new_keys = ue.answer_manage_keys(ue.expect("manage_keys_request"))
        assert check.outcome.value == "ok" and new_keys


def test_idle_session_is_terminated_by_the_hse():
    profile = load_profile(profile_with(idle_timeout=0.4))
    with HseServer(profile, port=0) as server, ue_for(server, profile=profile) as ue:
        ue.start()
        request = ue.expect("session_terminate_request", timeout=3)
        ue.check_downlink(request)
        ue.send_protected("session_terminate_response", [])
        time.sleep(0.2)
        assert not server.protocol.sessions


@pytest.mark.parametrize(
    ("change", "cause"),
    [({"eas_id": "rogue.example.com"}, "unknown_eas"), ({"imsi": "001019999999999"}, "unknown_subscriber")],
)
def test_session_request_rejections(hse, change, cause):
    sub = PROFILE.pixit.subscribers[0]
    credentials = Credentials(change.get("imsi", sub.imsi), sub.k, sub.opc, sub.sqn)
    with Ue(
        PROFILE.binding,
        credentials,
        hse.address,
        snn=PROFILE.pixit.serving_network_name,
        eas_id=change.get("eas_id", EAS),
    ) as ue:
        ue.session_request()
        assert cause_of(ue, ue.expect("message_reject")) == cause


def test_unknown_session_and_unknown_command_are_rejected(hse):
    with ue_for(hse) as ue:
        session = ue.start()
        ue.send(ue.codec.cp(0x7F, [], scheme=session.scheme, key_id=1, counter=50, session_id=session.id, mac=bytes(8)))
        assert cause_of(ue, ue.expect("message_reject")) == "unknown_command"
        stranger = copy.copy(session)
        ue.session = stranger
        stranger.id = (session.id + 1000) % 65535 or 1
        ue.send_protected("session_terminate_request", [])
        assert cause_of(ue, ue.expect("message_reject")) == "unknown_session"


def test_the_hse_keeps_serving_after_garbage(hse):
    with ue_for(hse) as ue:
        for junk in (b"", b"\x00", b"\xff" * 3, bytes(range(256)), b"\x10" * 40):
            ue.send(junk)
        while ue.receive(timeout=0.2) is not None:
            pass
        assert ue.start().checksum_ok
    assert hse.protocol.errors == 0


def test_a_new_session_request_supersedes_the_subscribers_old_session(hse):
    with ue_for(hse) as first:
        old = first.start()
        with ue_for(hse) as second:
            new = second.start()
        assert new.id in hse.protocol.sessions and old.id not in hse.protocol.sessions
        first.send(first.user_data(b"late"))
        assert first.codec.describe(first.expect("message_reject"))["tlvs"][0]["decoded"] == "unknown_session"


def test_a_forged_message_cannot_redirect_a_session():
    """Only a message whose MAC verifies may move the session's reply address: after a forged one, what the HSE
    sends on its own (here the idle Terminate) still goes to the UE, not to the forger."""
    import socket

    profile = load_profile(profile_with(idle_timeout=0.5))
    with (
        HseServer(profile, port=0) as server,
        ue_for(server, profile=profile) as ue,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker,
    ):
        session = ue.start()
        forged = ue.protected("session_terminate_request", [], counter=session.cp_counter + 5)
        forged = forged.with_mac(bytes(len(forged.mac)))
        attacker.sendto(bytes(forged), server.address)
        ue.check_downlink(ue.expect("session_terminate_request", timeout=3))
        attacker.settimeout(0.2)
        with pytest.raises(TimeoutError):
            attacker.recvfrom(2048)


def test_ue_to_eas_user_plane_is_relayed_unchanged_both_ways():
    """TS 33.163 6.2.1: in UE-to-EAS mode the HSE may pass the EMSDP user plane through unmodified."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as eas:
        eas.bind(("127.0.0.1", 0))
        eas.settimeout(2)
        data = profile_with(eas_user_plane={"host": "127.0.0.1", "port": eas.getsockname()[1]})
        data["pixit"]["subscribers"][0]["modes"] = ["ue_to_eas"]
        profile = load_profile(data)
        with HseServer(profile, port=0) as server, ue_for(server, profile=profile) as ue:
            session = ue.start()
            assert session.config["mode"] == "ue_to_eas"
            uplink = bytes(ue.user_data(b"for the enterprise"))
            ue.send(uplink)
            relayed, hse_address = eas.recvfrom(2048)
            assert relayed == uplink
            downlink = bytes(
                ue.codec.up(
                    b"from the enterprise",
                    scheme=session.scheme,
                    key_id=1,
                    counter=1,
                    session_id=session.id,
                    mac=bytes(8),
                )
            )
            eas.sendto(downlink, hse_address)
            assert bytes(ue.expect(None)) == downlink
