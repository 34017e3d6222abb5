"""The dead and crashing SUTs of the fault catalogue, seen on the wire (real sockets): a hung HSE, an HSE that
exits on a malformed datagram (embedded, and as its own `serve` process), a key server that closes every
connection, and an EMSE that never answers the UE. Each logs the moment it died."""

from __future__ import annotations

import logging
import os
import re
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance.faults import BY_NAME, INTERFACES
from conformance.keyserver.certs import CertificateDirectory
from conformance.profile import load_profile
from conformance.reference.death import DEATH_LOGGER, death_time
from conformance.reference.services import ReferenceEmksService, ReferenceHseService
from conformance.roles.ue import Credentials, Ue

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
HSE_PROFILE = load_profile(PROFILES / "reference-hse.yaml")
EMKS_PROFILE = load_profile(PROFILES / "reference-emks.yaml")
EXE = str(Path(sys.executable).with_name("best-conformance"))
DEAD = [
    "hse_hangs_after_setup",
    "hse_exits_on_malformed",
    "keyserver_closes_connections",
    "emse_never_answers",
    "ue_hangs_after_setup",  # its wire behaviour: tests/reference/test_reference_ue.py
    "hse_crashes_on_empty_ue_config",  # only fuzzing finds it (tests/fuzz); its wire behaviour: test_hse_faults.py
]


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return CertificateDirectory(tmp_path_factory.mktemp("certs"))


def ue(service):
    sub = HSE_PROFILE.pixit.subscribers[0]
    return Ue(
        HSE_PROFILE.binding,
        Credentials.from_subscriber(sub),
        service.hse.address if hasattr(service, "hse") else service,
        snn=HSE_PROFILE.pixit.serving_network_name,
        eas_id="eas.example.com",
    )


def udp_answer(address, payload: bytes, wait: float = 0.5) -> bytes | str:
    """Send one datagram from a connected socket, then again after `wait`: the answer, 'silence' when nothing
    came back, or 'unreachable' when the port is closed (ICMP port unreachable, reported on the second send)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(tuple(address))
        sock.settimeout(wait)
        try:
            for _ in range(2):
                sock.send(payload)
                try:
                    return sock.recv(65535)
                except TimeoutError:
                    continue
        except ConnectionRefusedError:
            return "unreachable"
        return "silence"


def tls_outcome(url: str, ca: Path, timeout: float = 1.0) -> str:
    """'refused' (no TCP), 'no answer' (TCP accepted, the handshake times out), 'closed' (TCP accepted, then
    closed or reset before any TLS answer) or 'handshake' (TLS completed)."""
    host, port = re.match(r"https://([\d.]+):(\d+)", url).groups()
    try:
        raw = socket.create_connection((host, int(port)), timeout=timeout)
    except ConnectionRefusedError:
        return "refused"
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False
    with raw:
        try:
            with context.wrap_socket(raw, server_hostname=host):
                return "handshake"
        except TimeoutError:
            return "no answer"
        except (ssl.SSLError, ConnectionError, OSError) as exc:
            if isinstance(exc, ssl.SSLError) and "ALERT" in str(exc).upper():
                return f"alert: {exc}"
            return "closed"


def test_the_dead_faults_are_catalogued_with_the_interfaces_they_kill():
    for name in DEAD:
        assert BY_NAME[name].dead and set(BY_NAME[name].dead) <= set(INTERFACES), name
    assert not any(f.dead for f in BY_NAME.values() if f.name not in DEAD)


def test_an_hse_that_hangs_after_the_set_up_answers_nothing_and_its_key_server_neither(certs, caplog):
    caplog.set_level(logging.INFO, DEATH_LOGGER)
    with ReferenceHseService(
        HSE_PROFILE, frozenset({"hse_hangs_after_setup"}), udp_port=0, rest_port=0, certs=certs
    ) as service:
        assert tls_outcome(service.keyserver.url, certs.ca) == "handshake"  # alive before the set-up
        before = time.time()
        with ue(service) as first:
            first.start()  # answered; its Start Confirmation sets the session up: from now on the HSE hangs
            deadline = time.time() + 2
            while service.died_at is None and time.time() < deadline:
                time.sleep(0.01)
        assert service.died_at is not None and before <= service.died_at <= time.time()
        with ue(service) as second:
            request = bytes(second.session_request())
        assert udp_answer(service.hse.address, request) == "silence"  # the port is open: no ICMP
        assert tls_outcome(service.keyserver.url, certs.ca) == "no answer"  # TCP accepted, no TLS answer
    [line] = [r.getMessage() for r in caplog.records if r.name == DEATH_LOGGER]
    assert "reference HSE died at" in line and "hse_hangs_after_setup" in line
    assert death_time(line) == pytest.approx(service.died_at, abs=1e-5)


def test_an_embedded_hse_that_exits_on_a_malformed_datagram_closes_its_port_and_key_server(certs):
    with ReferenceHseService(
        HSE_PROFILE, frozenset({"hse_exits_on_malformed"}), udp_port=0, rest_port=0, certs=certs
    ) as service:
        with ue(service) as alive:
            assert alive.start().checksum_ok  # valid datagrams are served
        assert service.died_at is None
        assert udp_answer(service.hse.address, b"\x00") in ("unreachable", "silence")  # the one that kills
        assert service.died_at is not None
        with ue(service) as late:
            request = bytes(late.session_request())
        assert udp_answer(service.hse.address, request) == "unreachable"
        assert tls_outcome(service.keyserver.url, certs.ca) == "refused"


def test_serve_hse_exits_on_a_malformed_datagram_and_its_port_is_then_unreachable(tmp_path):
    process = subprocess.Popen(
        [EXE, "serve", "hse", "--port", "0", "--rest-port", "0", "--fault", "hse_exits_on_malformed"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)},
    )
    try:
        for banner in process.stderr:
            if banner.startswith("reference") and "listening on" in banner:
                break
        match = re.search(r"UDP ([\d.]+):(\d+); key server (https://\S+);", banner)
        assert match, banner
        address = (match[1], int(match[2]))
        sent = time.time()
        udp_answer(address, b"\x00")
        assert process.wait(timeout=10) == 70
        log = process.stderr.read()
    finally:
        process.kill()
        process.wait()
    died = death_time(log)
    assert died is not None and sent - 1 <= died <= time.time(), log
    assert "reference HSE exits with status 70" in log
    with Ue(
        HSE_PROFILE.binding,
        Credentials.from_subscriber(HSE_PROFILE.pixit.subscribers[0]),
        address,
        snn=HSE_PROFILE.pixit.serving_network_name,
        eas_id="eas.example.com",
    ) as late:
        request = bytes(late.session_request())
    assert udp_answer(address, request) == "unreachable"
    assert tls_outcome(match[3], tmp_path / "none.pem") == "refused"


@pytest.mark.parametrize("kind", ["hse", "emks"])
def test_a_key_server_that_closes_every_connection_gives_no_tls_answer(certs, kind):
    faults = frozenset({"keyserver_closes_connections"})
    if kind == "hse":
        service = ReferenceHseService(HSE_PROFILE, faults, udp_port=0, rest_port=0, certs=certs)
    else:
        service = ReferenceEmksService(EMKS_PROFILE, faults, rest_port=0, certs=certs)
    started = time.time()
    with service:
        assert service.died_at is not None and started <= service.died_at <= time.time()
        for _ in range(3):
            assert tls_outcome(service.keyserver.url, certs.ca) == "closed"
        if kind == "hse":  # the UE side lives on
            with ue(service) as alive:
                assert alive.start().checksum_ok


def test_an_emse_that_never_answers_reads_the_ue_and_still_registers(tmp_path, caplog):
    pytest.importorskip("mbedtls")
    from conformance.engine.peers import harness_peers
    from conformance.reference.services import ReferenceEmseService

    caplog.set_level(logging.INFO, DEATH_LOGGER)
    certs = CertificateDirectory(tmp_path / "certs")
    profile = load_profile(PROFILES / "reference-emse.yaml")
    data = profile.profile.model_dump(mode="json", exclude_none=True)
    data["endpoints"]["key_server"] = "https://127.0.0.1:0"
    with (
        harness_peers(load_profile(data), certs) as peers,
        ReferenceEmseService(
            profile, peers.emks.url, frozenset({"emse_never_answers"}), dtls_port=0, certs=certs
        ) as emse,
    ):
        assert emse.died_at is not None
        assert peers.emks.live_session("emse-1") is not None  # registered with the EMKS
        hello = bytes.fromhex("16fefd0000000000000000002f")  # a DTLS record header: never answered
        assert udp_answer(emse.address, hello + bytes(47)) == "silence"  # read, not refused
    assert any("reference EMSE died at" in r.getMessage() for r in caplog.records if r.name == DEATH_LOGGER)
