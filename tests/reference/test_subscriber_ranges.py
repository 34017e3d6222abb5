"""The reference SUTs serve the subscribers of `pixit.subscriber_ranges` as they serve listed ones: a served HSE
(a real process) runs a session with a ranged IMSI and hands its EAS the session's key; a served EMKS hands out the
e2m_key of a ranged UE it provisioned on first use; and the range's secret never reaches a run's outputs."""

import re
import signal

from conformance.engine.expected_keys import e2m_keys, key_id_for
from conformance.keyserver.certs import CertificateDirectory
from conformance.keyserver.client import KeyServerClient
from conformance.profile import load_profile
from conformance.roles.ue import Credentials, Ue
from conformance.subscriber_ranges import subscriber_at
from tests.reference.test_serve import PROFILES, serve, stop

HSE = load_profile(PROFILES / "reference-hse.yaml")
EMKS = load_profile(PROFILES / "reference-emks.yaml")


def test_a_served_hse_runs_a_session_with_a_ranged_imsi_and_gives_its_eas_the_key(tmp_path):
    process, banner = serve("hse", tmp_path, "--port", "0")
    try:
        match = re.search(r"UDP ([\d.]+):(\d+); key server (https://\S+); certificates in (\S+)\.", banner)
        assert match, banner
        subscriber = subscriber_at(HSE.pixit.subscriber_ranges[0], 99999)  # the last of the range
        with Ue(
            HSE.binding,
            Credentials.from_subscriber(subscriber),
            (match[1], int(match[2])),
            snn=HSE.pixit.serving_network_name,
            eas_id="eas.example.com",
        ) as ue:
            session = ue.start()
            assert session.checksum_ok
            certs = CertificateDirectory(match[4])
            pair = certs.client("eas.example.com")
            with KeyServerClient(match[3], HSE.binding, ca=certs.ca, cert=pair.cert, key=pair.key) as eas:
                registration = eas.register("eas.example.com")
                key_id = key_id_for(HSE, session.rand, session.keys)
                assert eas.fetch_key(registration, subscriber.imsi, key_id) == session.keys["kint_eas_psk"]
    finally:
        stop(process)


def test_a_served_emks_hands_out_a_ranged_ues_keys_provisioned_on_first_use(tmp_path):
    process, banner = serve("emks", tmp_path)
    try:
        match = re.search(r"key server (https://\S+); certificates in (\S+)\.", banner)
        assert match, banner
        certs = CertificateDirectory(match[2])
        pair = certs.client("emse-1")
        subscriber = subscriber_at(EMKS.pixit.subscriber_ranges[0], 4242)
        with KeyServerClient(match[1], EMKS.binding, ca=certs.ca, cert=pair.cert, key=pair.key) as emse:
            registration = emse.register("emse-1")
            for rand in subscriber.rands:
                keys = e2m_keys(EMKS, rand, "emse-1", subscriber=subscriber)
                assert emse.fetch_key(registration, subscriber.imsi, keys["key_id"]) == keys["e2m_key"]
            outside = "001010100100000"  # one past the range: no key
            response = emse.request(
                "GET", emse.path("ue_key", session_id=registration, ue_id=outside, key_id=keys["key_id"].hex())
            )
            assert response.status_code in EMKS.binding["rest.status.unknown_key"]
    finally:
        stop(process)


def test_the_provision_trigger_adds_an_aka_run_for_a_ranged_ue(tmp_path):
    """`serve emks --provision-inbox`: a new RAND for a UE of the range not asked for yet is provisioned beside the
    range's own runs (oldest first), and its key served."""
    import time

    inbox, pid_file = tmp_path / "provision.inbox", tmp_path / "emks.pid"
    process, banner = serve("emks", tmp_path, "--provision-inbox", str(inbox), "--pid-file", str(pid_file))
    try:
        match = re.search(r"key server (https://\S+); certificates in (\S+)\.", banner)
        certs = CertificateDirectory(match[2])
        pair = certs.client("emse-1")
        subscriber = subscriber_at(EMKS.pixit.subscriber_ranges[0], 77)
        rand = bytes.fromhex("00112233445566778899aabbccddeeff")
        inbox.write_text(f"{subscriber.imsi} {rand.hex()}\n")
        process.send_signal(signal.SIGUSR1)
        keys = e2m_keys(EMKS, rand, "emse-1", subscriber=subscriber)
        with KeyServerClient(match[1], EMKS.binding, ca=certs.ca, cert=pair.cert, key=pair.key) as emse:
            registration = emse.register("emse-1")
            deadline = time.monotonic() + 5
            while True:  # the EMKS provisions on its signal, on a thread
                try:
                    assert emse.fetch_key(registration, subscriber.imsi, keys["key_id"]) == keys["e2m_key"]
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            newest = subscriber.rands[-1]  # still kept: 3 kept, the range gives 2
            older = e2m_keys(EMKS, newest, "emse-1", subscriber=subscriber)
            assert emse.fetch_key(registration, subscriber.imsi, older["key_id"]) == older["e2m_key"]
    finally:
        stop(process)


def test_the_range_secret_appears_in_no_file_of_a_run(run_folders):
    secret = EMKS.pixit.subscriber_ranges[0].secret
    folder = run_folders["one_case"]  # a run of the reference EMKS, whose profile has the range
    for path in (p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes().lower()
        assert secret.hex().encode() not in data and secret not in data, path
