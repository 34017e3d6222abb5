"""The reference SUTs as whole services: UE over UDP, EAS / EMSE over HTTPS with mutual TLS, push included."""

from __future__ import annotations

import queue
from pathlib import Path

import pytest

from conformance.crypto.keys import KeyHierarchy, key_identifier
from conformance.crypto.milenage import Milenage
from conformance.keyserver.app import create_notification_app
from conformance.keyserver.certs import CertificateDirectory
from conformance.keyserver.client import KeyServerClient
from conformance.keyserver.server import KeyServer, server_ssl_context
from conformance.profile import load_profile
from conformance.reference.services import ReferenceEmksService, ReferenceHseService
from conformance.roles.ue import Credentials, Ue

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
HSE_PROFILE = load_profile(PROFILES / "reference-hse.yaml")
EMKS_PROFILE = load_profile(PROFILES / "reference-emks.yaml")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return CertificateDirectory(tmp_path_factory.mktemp("certs"))


def client(service, certs, identity):
    """A key-server client with the certificate of `identity`; close it (use `with`) or the server waits."""
    pair = certs.client(identity)
    return KeyServerClient(
        service.keyserver.url, service.app.state.keyserver.binding, ca=certs.ca, cert=pair.cert, key=pair.key
    )


def test_hse_hands_the_eas_the_key_the_ue_derived_and_pushes_it(certs):
    binding = HSE_PROFILE.binding
    received: queue.Queue = queue.Queue()
    receiver = create_notification_app(binding, lambda doc, identity: received.put((doc, identity)))
    pair = certs.server()
    push_context = server_ssl_context(binding, ca=certs.ca, cert=pair.cert, key=pair.key)
    with (
        ReferenceHseService(HSE_PROFILE, udp_port=0, rest_port=0, certs=certs) as service,
        KeyServer(receiver, push_context) as eas_push,
        client(service, certs, "eas.example.com") as eas,
    ):
        session_id = eas.register("eas.example.com")
        eas.subscribe(session_id, eas_push.url + binding["rest.paths.notification"])
        sub = HSE_PROFILE.pixit.subscribers[0]
        with Ue(
            binding,
            Credentials.from_subscriber(sub),
            service.hse.address,
            snn=HSE_PROFILE.pixit.serving_network_name,
            eas_id="eas.example.com",
        ) as ue:
            ue_session = ue.start()
        key_id = ue_session.rand[-4:]
        assert eas.fetch_key(session_id, sub.imsi, key_id) == ue_session.keys["kint_eas_psk"]
        pushed, identity = received.get(timeout=5)
        assert (pushed.ue_id, pushed.key_id, pushed.key) == (sub.imsi, key_id, ue_session.keys["kint_eas_psk"])
        assert identity == "reference-hse"
        eas.deregister(session_id)


def test_hse_key_server_answers_unknown_keys_with_the_binding_status(certs):
    with (
        ReferenceHseService(HSE_PROFILE, udp_port=0, rest_port=0, certs=certs) as service,
        client(service, certs, "rogue.example.com") as rogue,
    ):
        session_id = rogue.register("rogue.example.com")
        path = rogue.path(
            "ue_key", session_id=session_id, ue_id=HSE_PROFILE.pixit.subscribers[0].imsi, key_id="00000000"
        )
        assert rogue.request("GET", path).status_code == HSE_PROFILE.binding["rest.status.unknown_key"][0]


def test_emks_serves_e2m_keys_of_the_provisioned_runs(certs):
    binding = EMKS_PROFILE.binding
    sub = EMKS_PROFILE.pixit.subscribers[0]
    hierarchy = KeyHierarchy.from_binding(binding)
    milenage = Milenage(sub.k, sub.opc)
    with (
        ReferenceEmksService(EMKS_PROFILE, rest_port=0, certs=certs) as service,
        client(service, certs, "emse-1") as emse,
    ):
        session_id = emse.register("emse-1")
        kept = binding["rest.past_keys_kept"]
        assert len(sub.rands) > kept  # the profile also lists runs the EMKS no longer keeps
        for rand in sub.rands[-kept:]:  # the newest and the ones kept before it
            _, ck, ik, _ = milenage.f2345(rand)
            derived, _ = hierarchy.derive_all(ck=ck, ik=ik, key_agreement="umts", inputs={"emse_id": b"emse-1"})
            key_id = key_identifier(
                binding["keys.key_identifier.scheme"], binding["keys.key_identifier.bits"], rand=rand
            )
            assert emse.fetch_key(session_id, sub.imsi, key_id) == derived["e2m_key"].value
