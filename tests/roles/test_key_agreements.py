"""The UE role's key agreements beside UMTS and 5G AKA, and the plain-HTTP probe of the key-client role.

- EPS AKA roots the UE's keys in KASME (TS 33.401 A.2): its SN id is the PIXIT's serving_network_id, else the
  Serving Network TLV itself (plmn_id encoding) or the PLMN id of the serving network name; a UE that has none
  cannot derive EPS keys and says so instead of using keys that do not exist.
- EAP-AKA' roots them in KHSE(0x64) keyed with CK'||IK' (TS 33.163 5, TS 33.402 A.2).
- What a server sends back to HTTP in the clear is told apart: an HTTP answer, a TLS record, nothing.
"""

from __future__ import annotations

import socket
import threading

import pytest

from conformance.binding import load_binding
from conformance.crypto.kdf import kdf
from conformance.crypto.milenage import Milenage
from conformance.roles.errors import ProtocolError
from conformance.roles.key_client import PlainAnswer, plain_http_exchange
from conformance.roles.ue import Credentials, Ue, serving_network_id
from tests.kat import h, load_fixture

SET1 = load_fixture("milenage_ts35208.yaml")["vectors"][0]
SNN = "5G:mnc001.mcc001.3gppnetwork.org"
BINDING = load_binding()
KINT_LABEL = BINDING["keys.derivations.kint.params"][0].removeprefix("utf8:").encode()  # KInt's one input


def ue(sn_id: bytes | None = None, snn: str = SNN) -> Ue:
    credentials = Credentials("001010123456789", h(SET1["k"]), h(SET1["opc"]))
    return Ue(BINDING, credentials, ("127.0.0.1", 9), snn=snn, sn_id=sn_id, eas_id="eas.example.com")


def session_keys(role: Ue, agreement: str) -> tuple[dict[str, bytes], bytes, bytes]:
    """The keys the UE derives for test set 1's RAND on `agreement`; CK and IK."""
    rand, autn = h(SET1["rand"]), bytes(16)
    _, ck, ik, _ = Milenage(h(SET1["k"]), h(SET1["opc"])).f2345(rand)
    config = {"key_agreement": agreement, "ciphering_algorithm": 2, "integrity_algorithm": 2}
    return role._keys({"rand": rand, "autn": autn}, config, ck, ik), ck, ik


def test_the_sn_id_defaults_to_the_serving_network_names_plmn():
    assert serving_network_id("snn", SNN) == bytes.fromhex("001100")  # MNC 001 as the name writes it
    assert serving_network_id("plmn_id", "00f110") == bytes.fromhex("00f110")
    assert serving_network_id("snn", "a network") is None
    assert serving_network_id("plmn_id", SNN) is None


def test_eps_keys_are_rooted_in_kasme_from_the_pixit_sn_id():
    with ue(bytes.fromhex("00f110")) as role:
        keys, ck, ik = session_keys(role, "eps")
    assert keys["kasme"] == kdf(ck + ik, 0x10, bytes.fromhex("00f110"), bytes(6))  # TS 33.401 A.2
    assert keys["kint"] == kdf(keys["kasme"], BINDING["keys.derivations.kint.fc"], KINT_LABEL)
    with ue() as other:  # the default SN id (MNC 001) is another network: other keys
        assert session_keys(other, "eps")[0]["kint"] != keys["kint"]


def test_a_ue_without_an_sn_id_cannot_derive_eps_keys():
    with ue(snn="a network") as role, pytest.raises(ProtocolError, match="cannot derive kasme, the root of eps"):
        session_keys(role, "eps")


def test_eap_aka_prime_keys_are_rooted_in_khse_with_fc_0x64():
    with ue() as role:
        keys, ck, ik = session_keys(role, "eap_aka_prime")
    ck_ik_prime = kdf(ck + ik, 0x20, SNN.encode(), bytes(6))
    assert keys["ck_ik_prime"] == ck_ik_prime
    assert keys["khse_eap_aka_prime"] == kdf(ck_ik_prime, 0x64, SNN.encode(), bytes(6))
    assert keys["kint"] == kdf(keys["khse_eap_aka_prime"], BINDING["keys.derivations.kint.fc"], KINT_LABEL)


@pytest.mark.parametrize(
    ("octets", "ending", "http", "tls", "shown"),
    [
        (b"HTTP/1.1 403 Forbidden\r\n", "waiting", True, False, "a plaintext HTTP answer: 'HTTP/1.1 403 Forbidden'"),
        (b"HTTP/1.1 101 Switching Protocols\r\n", "waiting", True, False, "'HTTP/1.1 101 Switching Protocols'"),
        (b"HTT", "closed", True, False, "a plaintext HTTP answer"),
        (b"\x15\x03\x03\x00\x02\x02\x46", "closed", False, True, "a TLS alert (level 2, description 70)"),
        (b"", "closed", False, False, "the connection closed"),
        (b"", "reset", False, False, "the connection reset"),
        (b"", "waiting", False, False, "no answer, the connection left open"),
        (b"hello there", "closed", False, False, "neither HTTP nor TLS"),
    ],
)
def test_a_plain_answer_says_what_it_is(octets, ending, http, tls, shown):
    answer = PlainAnswer(octets, ending)
    assert (answer.http, answer.tls) == (http, tls)
    assert shown in answer.describe()


def test_the_plain_exchange_reads_the_status_line_of_an_http_answer():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def answer() -> None:
            connection, _ = server.accept()
            with connection:
                connection.recv(4096)
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                connection.recv(1)  # keep the connection open until the client is done

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        got = plain_http_exchange("127.0.0.1", port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=2.0)
        thread.join(timeout=5)
    assert got.http and got.status == 400 and got.ending == "waiting"
