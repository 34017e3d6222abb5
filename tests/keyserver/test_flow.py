"""The whole EMSE-EMKS procedure over real HTTPS with mutual TLS: register, fetch, deregister, push."""

from __future__ import annotations

import logging
import threading

import pytest

from conformance.binding.loader import load_binding
from conformance.crypto.keys import KeyHierarchy
from conformance.crypto.milenage import Milenage
from conformance.keyserver.app import create_notification_app
from conformance.keyserver.client import KeyServerError
from conformance.keyserver.server import KeyServer, server_ssl_context
from conformance.keyserver.xml import UeKey
from tests.keyserver import (
    CLIENT_ID,
    OPC,
    OTHER_CLIENT_ID,
    PUSH_IDENTITY,
    RAND,
    UE_ID,
    K,
    rand_of_run,
)

BINDING = load_binding()
STATUS = BINDING.section("rest.status")


@pytest.fixture
def client(ks):
    with ks.client(CLIENT_ID) as c:
        yield c


def expected_e2m_key(rand: bytes, emse_id: str) -> bytes:
    """The harness's own derivation: MILENAGE f3/f4, then the binding's e2m key chain with EMSE_Id."""
    _res, ck, ik, _ak = Milenage(K, OPC).f2345(rand)
    derived, _ = KeyHierarchy.from_binding(BINDING).derive_all(
        ck=ck, ik=ik, key_agreement="umts", inputs={"emse_id": emse_id.encode()}
    )
    return derived["e2m_key"].value


def key_id_of(rand: bytes) -> bytes:
    return rand[-BINDING["keys.key_identifier.bits"] // 8 :]


def test_registration_answers_created_with_session_id_and_location(client):
    response = client.request("POST", client.path("register"), content=client.xml.registration(CLIENT_ID))
    assert response.status_code == STATUS["registered"][0]
    assert response.headers["content-type"] == BINDING["rest.content_type"]
    session_id = client.xml.parse_registration_answer(response.content)
    assert response.headers["location"] == client.path("registration", session_id=session_id)


def test_fetched_key_is_e2m_key_for_the_registered_emse(ks, client):
    session_id = client.register(CLIENT_ID)
    response = client.request(
        "GET", client.path("ue_key", session_id=session_id, ue_id=UE_ID, key_id=key_id_of(RAND).hex())
    )
    assert response.status_code == STATUS["key_delivered"][0]
    assert client.xml.parse_ue_key(response.content) == UeKey(UE_ID, key_id_of(RAND), expected_e2m_key(RAND, CLIENT_ID))
    with ks.client(OTHER_CLIENT_ID) as other:  # same e2m_int_key, another EMSE_Id: another key
        other_key = other.fetch_key(other.register(OTHER_CLIENT_ID), UE_ID, key_id_of(RAND))
    assert other_key == expected_e2m_key(RAND, OTHER_CLIENT_ID) != expected_e2m_key(RAND, CLIENT_ID)


def test_keys_one_run_behind_resolve_and_older_than_past_keys_kept_do_not(ks, client):
    ue_id = "imsi-001010000000002"
    kept = BINDING["rest.past_keys_kept"]
    rands = [rand_of_run(run) for run in range(kept + 1)]
    for rand in rands:
        assert ks.store.provision_from_aka(ue_id, K, OPC, rand) == key_id_of(rand)
    session_id = client.register(CLIENT_ID)
    for rand in rands[1:]:  # the newest, one run behind, ... up to past_keys_kept
        assert client.fetch_key(session_id, ue_id, key_id_of(rand)) == expected_e2m_key(rand, CLIENT_ID)
    evicted = client.request(
        "GET", client.path("ue_key", session_id=session_id, ue_id=ue_id, key_id=key_id_of(rands[0]).hex())
    )
    assert evicted.status_code in STATUS["unknown_key"]


@pytest.mark.parametrize(
    ("ue_id", "key_id"),
    [("imsi-001019999999999", key_id_of(RAND)), (UE_ID, bytes(len(key_id_of(RAND))))],
    ids=["unknown-ue", "unknown-key-id"],
)
def test_unknown_ue_or_key_id_is_not_found(client, ue_id, key_id):
    session_id = client.register(CLIENT_ID)
    with pytest.raises(KeyServerError) as refused:
        client.fetch_key(session_id, ue_id, key_id)
    assert refused.value.status in STATUS["unknown_key"]


def test_deregistered_session_is_gone(client):
    session_id = client.register(CLIENT_ID)
    deleted = client.request("DELETE", client.path("registration", session_id=session_id))
    assert deleted.status_code == STATUS["deregistered"][0]
    key_path = client.path("ue_key", session_id=session_id, ue_id=UE_ID, key_id=key_id_of(RAND).hex())
    assert client.request("GET", key_path).status_code in STATUS["unknown_registration"]
    again = client.request("DELETE", client.path("registration", session_id=session_id))
    assert again.status_code in STATUS["unknown_registration"]


def test_another_clients_session_id_is_refused(ks, client):
    session_id = client.register(CLIENT_ID)
    with ks.client(OTHER_CLIENT_ID) as intruder:
        attempts = [
            intruder.request(
                "GET", intruder.path("ue_key", session_id=session_id, ue_id=UE_ID, key_id=key_id_of(RAND).hex())
            ),
            intruder.request(
                "POST",
                intruder.path("subscription", session_id=session_id),
                content=intruder.xml.subscription("https://127.0.0.1:1/stolen"),
            ),
            intruder.request("DELETE", intruder.path("registration", session_id=session_id)),
        ]
    assert [a.status_code for a in attempts] == [STATUS["forbidden"][0]] * 3
    assert client.fetch_key(session_id, UE_ID, key_id_of(RAND)) == expected_e2m_key(RAND, CLIENT_ID)


def test_unknown_session_is_not_found(client):
    response = client.request(
        "GET", client.path("ue_key", session_id="nope", ue_id=UE_ID, key_id=key_id_of(RAND).hex())
    )
    assert response.status_code in STATUS["unknown_registration"]


def test_new_key_is_pushed_to_a_subscribed_client_over_mutual_tls(ks, client):
    received: list[tuple[UeKey, str | None]] = []
    arrived = threading.Event()

    def on_key(doc: UeKey, identity: str | None) -> None:
        received.append((doc, identity))
        arrived.set()

    pair = ks.certs.server()
    context = server_ssl_context(BINDING, ca=ks.certs.ca, cert=pair.cert, key=pair.key)
    with KeyServer(create_notification_app(BINDING, on_key), context) as receiver:
        session_id = client.register(CLIENT_ID)
        client.subscribe(session_id, receiver.url + BINDING["rest.paths.notification"])
        ue_id, rand = "imsi-001010000000003", rand_of_run(7)
        ks.store.provision_from_aka(ue_id, K, OPC, rand)
        deliveries = ks.server.run_coroutine(ks.state.notify_all(ue_id))
        assert arrived.wait(5)
        client.deregister(session_id)
    assert [d.delivered for d in deliveries if d.session_id == session_id] == [True], deliveries
    assert received == [(UeKey(ue_id, key_id_of(rand), expected_e2m_key(rand, CLIENT_ID)), PUSH_IDENTITY)]


def test_push_to_an_unreachable_client_is_reported_not_raised(ks, client):
    session_id = client.register(CLIENT_ID)
    client.subscribe(session_id, "https://127.0.0.1:1" + BINDING["rest.paths.notification"])
    deliveries = ks.server.run_coroutine(ks.state.notify_all(UE_ID))
    failed = [d for d in deliveries if d.session_id == session_id]
    assert len(failed) == 1 and not failed[0].delivered and failed[0].error
    client.deregister(session_id)


def test_each_exchange_is_logged_with_the_certificate_identity(client, caplog):
    with caplog.at_level(logging.INFO, logger="conformance.keyserver"):
        client.register(CLIENT_ID)
    lines = [r.getMessage() for r in caplog.records if r.name == "conformance.keyserver"]
    assert any(
        f"POST {BINDING['rest.paths.register']} {STATUS['registered'][0]} identity={CLIENT_ID}" in line
        for line in lines
    ), lines
