"""Each key-server fault of the catalogue shows on the wire, and the conformant server does not show it.

Every check below runs against the conformant server and against a server with the fault switched on; the
parametrisation comes from the catalogue, so a new key-server fault without a check fails here.
"""

from __future__ import annotations

import socket
import ssl
import threading
from http import HTTPStatus

import httpx
import pytest

from conformance.binding.loader import load_binding
from conformance.faults import CATALOGUE
from conformance.keyserver.app import create_notification_app
from conformance.keyserver.certs import CertificateDirectory
from conformance.keyserver.schema import XmlNames
from conformance.keyserver.server import KeyServer, server_ssl_context
from conformance.keyserver.xml import UeKey
from conformance.roles.key_client import PlainAnswer, plain_http_exchange
from tests.keyserver import CLIENT_ID, OPC, OTHER_CLIENT_ID, RAND, UE_ID, K, rand_of_run, running_keyserver

BINDING = load_binding()
STATUS = BINDING.section("rest.status")
NAMES = XmlNames.from_binding(BINDING)
KEY_ID = RAND[-NAMES.key_id_octets :]  # test set 1's key, provisioned for UE_ID
KEYSERVER_FAULTS = sorted(f.name for f in CATALOGUE if f.component == "keyserver")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return CertificateDirectory(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def conformant(certs):
    with running_keyserver(BINDING, certs) as running:
        yield running


def registration_with_dtd(entities: str, client_id: str) -> bytes:
    return (
        f"<!DOCTYPE {NAMES.registration} [{entities}]>"
        f'<{NAMES.registration} xmlns="{NAMES.namespace}"><{NAMES.client_id}>{client_id}</{NAMES.client_id}>'
        f"</{NAMES.registration}>"
    ).encode()


def key_path(client, session_id, ue_id, key_id: bytes) -> str:
    return client.path("ue_key", session_id=session_id, ue_id=ue_id, key_id=key_id.hex())


def two_aka_runs(ks, ue_id):
    """Provision an old and a new key for a UE; their key ids."""
    return [ks.store.provision_from_aka(ue_id, K, OPC, rand_of_run(run)) for run in (1, 2)]


# -- one observation per fault: (ks, faulty) -> asserts what the wire shows --------------------------------


def check_client_cert_not_required(ks, faulty):
    with ks.client(None) as anonymous:
        try:
            response = anonymous.request(
                "POST", anonymous.path("register"), content=anonymous.xml.registration(CLIENT_ID)
            )
        except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
            assert not faulty, "the faulty server must let a client without certificate through TLS"
            return
    assert faulty, "the conformant server answered a client without certificate"
    assert response.status_code == STATUS["forbidden"][0]  # through TLS, but no identity to register


def check_cert_identity_not_checked(ks, faulty):
    with ks.client(OTHER_CLIENT_ID) as impostor:
        response = impostor.request("POST", impostor.path("register"), content=impostor.xml.registration(CLIENT_ID))
    assert response.status_code == (STATUS["registered"][0] if faulty else STATUS["forbidden"][0])


def check_wrong_register_status(ks, faulty):
    with ks.client(CLIENT_ID) as client:
        response = client.request("POST", client.path("register"), content=client.xml.registration(CLIENT_ID))
    assert response.status_code == (HTTPStatus.OK if faulty else STATUS["registered"][0])


def check_key_id_ignored(ks, faulty):
    old_id, new_id = two_aka_runs(ks, "imsi-001010000000011")
    with ks.client(CLIENT_ID) as client:
        session_id = client.register(CLIENT_ID)
        old = client.fetch_key(session_id, "imsi-001010000000011", old_id)
        new = client.fetch_key(session_id, "imsi-001010000000011", new_id)
        unknown = client.request("GET", key_path(client, session_id, "imsi-001010000000011", bytes(len(old_id))))
    assert (old == new) is faulty
    assert unknown.status_code == (STATUS["key_delivered"][0] if faulty else STATUS["unknown_key"][0])


def check_past_keys_not_kept(ks, faulty):
    old_id, _ = two_aka_runs(ks, "imsi-001010000000012")
    with ks.client(CLIENT_ID) as client:
        response = client.request("GET", key_path(client, client.register(CLIENT_ID), "imsi-001010000000012", old_id))
    assert response.status_code == (STATUS["unknown_key"][0] if faulty else STATUS["key_delivered"][0])


def check_xml_entities_expanded(ks, faulty):
    internal = registration_with_dtd(f'<!ENTITY id "{CLIENT_ID}">', "&id;")
    # A small billion laughs: 4^3 x "lol" = 192 characters, inside the schema's length limit once expanded.
    bomb = registration_with_dtd(
        '<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;">', "&d;"
    )
    with ks.client(CLIENT_ID) as client:
        by_entity = client.request("POST", client.path("register"), content=internal)
        by_bomb = client.request("POST", client.path("register"), content=bomb)
    if faulty:
        assert by_entity.status_code == STATUS["registered"][0]
        assert by_bomb.status_code == STATUS["forbidden"][0] and "lol" * 64 in by_bomb.text  # expanded id echoed
    else:
        assert by_entity.status_code == by_bomb.status_code == STATUS["bad_request"][0]
        assert "DTD" in by_entity.text and "lol" not in by_bomb.text


def check_session_not_deleted(ks, faulty):
    with ks.client(CLIENT_ID) as client:
        session_id = client.register(CLIENT_ID)
        client.deregister(session_id)  # success either way
        after = client.request("GET", key_path(client, session_id, UE_ID, KEY_ID))
    assert after.status_code == (STATUS["key_delivered"][0] if faulty else STATUS["unknown_registration"][0])


def check_push_for_wrong_client(ks, faulty):
    received: list[UeKey] = []
    arrived = threading.Event()
    pair = ks.certs.server()
    context = server_ssl_context(BINDING, ca=ks.certs.ca, cert=pair.cert, key=pair.key)
    app = create_notification_app(BINDING, lambda doc, _identity: (received.append(doc), arrived.set()))
    with KeyServer(app, context) as receiver, ks.client(CLIENT_ID) as client:
        session_id = client.register(CLIENT_ID)
        client.subscribe(session_id, receiver.url + BINDING["rest.paths.notification"])
        ue_id = "imsi-001010000000013"
        ks.store.provision_from_aka(ue_id, K, OPC, rand_of_run(9))
        ks.server.run_coroutine(ks.state.notify_all(ue_id))
        assert arrived.wait(5), "no push arrived"
        fetched = client.fetch_key(session_id, ue_id, received[0].key_id)
        client.deregister(session_id)
    assert (received[0].key != fetched) is faulty  # pushed for another identity than the subscriber's


def check_subscription_not_owned(ks, faulty):
    with ks.client(OTHER_CLIENT_ID) as other, ks.client(CLIENT_ID) as client:
        others = other.register(OTHER_CLIENT_ID)
        response = client.request(
            "POST", client.path("subscription", session_id=others), content=client.xml.subscription("https://x/n")
        )
    assert response.status_code == (STATUS["subscribed"][0] if faulty else STATUS["forbidden"][0])


def _handshake_completes(ks, version: ssl.TLSVersion) -> bool:
    """A TLS handshake offering only `version`, with a client certificate, to the key server."""
    pair = ks.certs.client(CLIENT_ID)
    context = ssl.create_default_context(cafile=str(ks.certs.ca))
    context.load_cert_chain(str(pair.cert), str(pair.key))
    context.minimum_version = context.maximum_version = version
    host, port = ks.server.host, ks.server.port
    try:
        with socket.create_connection((host, port), timeout=5) as sock, context.wrap_socket(sock, server_hostname=host):
            return True
    except (ssl.SSLError, OSError):
        return False


def check_tls12_not_supported(ks, faulty):
    assert _handshake_completes(ks, ssl.TLSVersion.TLSv1_2) is not faulty
    assert _handshake_completes(ks, ssl.TLSVersion.TLSv1_3)


def check_tls13_not_supported(ks, faulty):
    assert _handshake_completes(ks, ssl.TLSVersion.TLSv1_3) is not faulty
    assert _handshake_completes(ks, ssl.TLSVersion.TLSv1_2)


def check_keyserver_closes_connections(ks, faulty):
    """TCP is accepted, then closed before any TLS answer: the handshake ends in EOF or a reset, not an alert."""
    host, port = ks.server.host, ks.server.port
    context = ssl.create_default_context(cafile=str(ks.certs.ca))
    with socket.create_connection((host, port), timeout=5) as sock:
        try:
            with context.wrap_socket(sock, server_hostname=host):
                completed = True
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionError):
            completed = False
    assert completed is not faulty


def _plain(ks, head: str, body: bytes = b"") -> PlainAnswer:
    """A request in the clear on the key server's TLS port, and what came back."""
    host, port = ks.server.host, ks.server.port
    fields = f"Host: {host}:{port}\r\nContent-Type: {BINDING['rest.content_type']}\r\nContent-Length: {len(body)}"
    request = f"{head}\r\n{fields}\r\n\r\n".encode() + body
    return plain_http_exchange(host, port, request, timeout=1.0)


def check_plain_http_answered(ks, faulty):
    """The registration POST in the clear: the faulty server answers it in plain HTTP (403: no certificate, no
    identity), the conformant one gives no HTTP answer; mutual TLS works on the same port either way."""
    with ks.client(CLIENT_ID) as client:
        answer = _plain(ks, f"POST {BINDING['rest.paths.register']} HTTP/1.1", client.xml.registration(CLIENT_ID))
        assert answer.http is faulty, answer.describe()
        if faulty:
            assert answer.status == STATUS["forbidden"][0], answer.describe()
        assert client.register(CLIENT_ID)


def check_http_upgrade_accepted(ks, faulty):
    """RFC 2817 3.2: the faulty server answers OPTIONS * with Upgrade: TLS/1.2 by 101 and runs mutual TLS on the
    same connection, and drops plain HTTP without the Upgrade; the conformant one answers neither in HTTP."""
    host, port = ks.server.host, ks.server.port
    pair = ks.certs.client(CLIENT_ID)
    context = ssl.create_default_context(cafile=str(ks.certs.ca))
    context.load_cert_chain(str(pair.cert), str(pair.key))
    request = f"OPTIONS * HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: TLS/1.2\r\nConnection: Upgrade\r\n\r\n"
    with socket.create_connection((host, port), timeout=2) as sock:
        sock.sendall(request.encode())
        try:
            head = sock.recv(4096)
        except (TimeoutError, ConnectionError):
            head = b""
        assert head.startswith(b"HTTP/1.1 101 ") is faulty, head
        if faulty:  # the TLS handshake and a registration on the upgraded connection
            with context.wrap_socket(sock, server_hostname=host) as tls, ks.client(CLIENT_ID) as client:
                body = client.xml.registration(CLIENT_ID)
                tls.sendall(
                    f"POST {BINDING['rest.paths.register']} HTTP/1.1\r\nHost: {host}\r\n"
                    f"Content-Type: {BINDING['rest.content_type']}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                assert tls.recv(4096).startswith(f"HTTP/1.1 {STATUS['registered'][0]} ".encode())
    plain = _plain(ks, f"POST {BINDING['rest.paths.register']} HTTP/1.1")
    assert not plain.http, plain.describe()


def check_keyserver_500_on_unknown_element(ks, faulty):
    """A registration with an element the schema does not know: 500 from the faulty server (the fault only fuzzing
    finds, tests/fuzz), a bad request from the conformant one; a valid registration registers either way."""
    with ks.client(CLIENT_ID) as client:
        head, _, tail = client.xml.registration(CLIENT_ID).rpartition(b"</")  # inside the root, after ClientId
        body = head + b"<Extra/></" + tail
        answer = client.request("POST", client.path("register"), content=body)
        assert answer.status_code == (500 if faulty else STATUS["bad_request"][0]), answer.text
    with ks.client(CLIENT_ID) as client:  # a new connection: after a 500 the server closes the one it had
        assert client.register(CLIENT_ID)


def check_keyserver_drops_above_rate(ks, faulty):
    """Four times the rate as fast as one connection goes (a second of the clock gets over half of them): 503 from
    the faulty server past RATE_LIMIT in a second (the fault only load finds, tests/load), none from the conformant."""
    from conformance.keyserver.app import RATE_LIMIT

    with ks.client(CLIENT_ID) as client:
        statuses = set()
        for _ in range(4 * RATE_LIMIT):
            statuses.add(
                client.request("POST", client.path("register"), content=client.xml.registration(CLIENT_ID)).status_code
            )
            if HTTPStatus.SERVICE_UNAVAILABLE in statuses:
                break
    assert (HTTPStatus.SERVICE_UNAVAILABLE in statuses) == faulty, statuses
    assert statuses - {HTTPStatus.SERVICE_UNAVAILABLE} == {STATUS["registered"][0]}, statuses


CHECKS = {name: globals()[f"check_{name}"] for name in KEYSERVER_FAULTS}


@pytest.mark.parametrize("fault", KEYSERVER_FAULTS)
def test_conformant_server_does_not_show_the_fault(conformant, fault):
    CHECKS[fault](conformant, faulty=False)


@pytest.mark.parametrize("fault", KEYSERVER_FAULTS)
def test_fault_shows_on_the_wire(certs, fault):
    with running_keyserver(BINDING, certs, faults={fault}) as faulty:
        CHECKS[fault](faulty, faulty=True)
