"""Datagram hygiene: the network's duplicates and delays are never charged to the SUT (issue 11, item 9).

Two levels, real UDP sockets throughout:
- the UE role against a scripted peer (a socket standing in for the HSE, sending exactly what and when a test
  says), for each rule: duplicate, stale, late, silence;
- the engine against the reference HSE through a relay (tests/relay.py) that duplicates every datagram in both
  directions, or delays some: conformant verdicts unchanged, late answers named late, faults still caught.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.capture.reader import udp_datagrams
from conformance.capture.tap import PcapTap
from conformance.crypto.aka import generate_vector
from conformance.embedded import embedded_reference
from conformance.emsdp.values import encode_hse_config
from conformance.engine.lint import load_suite
from conformance.engine.model import LintReport, load_cases, suite_dir
from conformance.engine.results import Result, Verdict
from conformance.engine.runner import run_case
from conformance.profile import LoadedProfile, load_profile
from conformance.roles.ue import (
    DUPLICATE,
    FOLLOWED,
    STALE,
    SUPERSEDED,
    Credentials,
    LateReply,
    NoReply,
    PortUnreachable,
    Ue,
    annotate_trace,
)
from conformance.selftest import EXPECTED_CATCHERS, failing_verdict
from tests.engine import explain, run_against_reference
from tests.relay import delaying, duplicating

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "profiles" / "reference-hse.yaml"
CASES = {case.id: case for case in load_suite(suite_dir("hse").glob("*.yaml"))[0]}

# ---- the UE against a scripted peer -------------------------------------------------------------------------


class Peer:
    """The HSE's side, scripted: a real socket that reads what the UE sends and sends what the test says."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(2)
        self.address = self.sock.getsockname()
        self.ue: tuple[str, int] | None = None

    def recv(self) -> bytes:
        data, self.ue = self.sock.recvfrom(65535)
        return data

    def send(self, *datagrams: bytes, settle: float = 0.02) -> None:
        for datagram in datagrams:
            self.sock.sendto(datagram, self.ue)
        time.sleep(settle)  # so they have arrived before the UE's next move


@pytest.fixture
def peer() -> Iterator[Peer]:
    p = Peer()
    yield p
    p.sock.close()


@pytest.fixture
def profile() -> LoadedProfile:
    return load_profile(PROFILE)


@pytest.fixture
def ue(peer, profile, tmp_path) -> Iterator[Ue]:
    with PcapTap(tmp_path / "ue.pcap") as tap:
        role = Ue(
            profile.binding,
            Credentials.from_subscriber(profile.pixit.subscribers[0]),
            peer.address,
            snn=profile.pixit.serving_network_name,
            eas_id=profile.pixit.eas_id,
            tap=tap,
            timeout=1.0,
        )
        yield role
        role.close()


def session_start(ue: Ue, request: bytes, session_id: int, seq: int) -> bytes:
    """A Session Start a conformant HSE could send for `request`: a vector SEQ steps past the USIM's SQN."""
    binding, layout = ue.binding, ue.layout
    sqn = int.from_bytes(ue.credentials.sqn, "big") + (seq << binding["aka.sqn.ind_bits"])
    vector = generate_vector(ue.milenage, os.urandom(16), sqn.to_bytes(6, "big"), bytes.fromhex("8000"))
    config = encode_hse_config(
        layout,
        service="up_integrity",
        mode="ue_to_hse",
        key_agreement="5g_aka",
        counter_scheme=layout.default_scheme,
        mac_bits=layout.mac_bytes * 8,
        integrity_algorithm=binding["protection.algorithm_ids.integrity"],
        ciphering_algorithm=binding["protection.algorithm_ids.ciphering"],
    )
    checksum = hashlib.sha256(request).digest()[: binding["emsdp.request_checksum.bytes"]]
    tlvs = [("rand", vector.rand), ("autn", vector.autn), ("hse_config", config), ("request_checksum", checksum)]
    return bytes(ue.codec.cp("session_start", tlvs, key_id=0, counter=1, session_id=session_id))


def reject(ue: Ue, cause: str = "unknown_subscriber", rejected: str | None = "session_request") -> bytes:
    """An unprotected Message Reject (Key ID 0, Session ID 0), as an HSE sends for a request it refuses."""
    tlvs = [("cause", bytes([ue.layout.causes[cause]]))]
    if rejected:
        tlvs.append(("rejected_command", bytes([ue.layout.commands[rejected]])))
    return bytes(ue.codec.cp("message_reject", tlvs, key_id=0, counter=0, session_id=0))


def kinds(ue: Ue) -> list[str]:
    return [note["kind"] for note in ue.notes]


def test_a_copy_of_an_answer_is_a_duplicate_and_never_the_next_answer(ue, peer):
    request = bytes(ue.session_request())
    peer.recv()
    first = session_start(ue, request, 7, 1)
    peer.send(first, first)  # the network delivers the answer twice
    assert bytes(ue.expect("session_start", timeout=0.5)) == first
    ue.session_request()  # the next request: a stale copy must not pass for its answer
    peer.recv()
    peer.send(first)  # a Session Start's RAND is single-use: a copy is a copy, even after a new request
    assert ue.receive(timeout=0.2) is None
    assert kinds(ue) == [DUPLICATE, DUPLICATE]
    assert "exact copy of the session_start" in ue.notes[0]["description"]


def test_the_same_unprotected_reject_after_a_new_message_is_a_new_answer(ue, peer):
    """Two bad requests, two identical Message Rejects: both answers. A copy with no message in between is not."""
    no = reject(ue)
    ue.session_request(imsi="001019999999999")
    peer.recv()
    peer.send(no, no)
    assert bytes(ue.expect("message_reject", timeout=0.5)) == no
    ue.session_request(imsi="001019999999999")
    peer.recv()
    peer.send(no)
    assert bytes(ue.expect("message_reject", timeout=0.5)) == no
    assert kinds(ue) == [DUPLICATE]  # the copy that came with the first answer


def test_a_session_start_that_arrived_before_the_request_left_is_stale(ue, peer):
    old = bytes(ue.session_request())
    peer.recv()
    peer.send(session_start(ue, old, 5, 1))  # not read yet: the UE sends its next request first
    new = bytes(ue.session_request(eas_id="eas2.example.com"))
    peer.recv()
    answer = session_start(ue, new, 6, 2)
    peer.send(answer)
    assert bytes(ue.expect("session_start", timeout=0.5)) == answer
    assert kinds(ue) == [STALE]
    assert "before the Session Request it would answer left" in ue.notes[0]["description"]


def test_a_second_answer_to_a_duplicated_request_is_followed_before_the_session_is_used(ue, peer):
    """The network duplicated the request; the HSE answered each copy and kept the newer session."""
    request = bytes(ue.session_request())
    peer.recv()
    first, second = session_start(ue, request, 3, 1), session_start(ue, request, 4, 2)
    peer.send(first, second)
    assert ue.accept_session_start(ue.expect("session_start", timeout=0.5)).outcome.value == "ok"
    ue.follow_answer()
    assert ue.session.id == 4
    assert kinds(ue) == [STALE, FOLLOWED]
    ue.confirm()
    confirmation = ue.codec.decode(peer.recv(), ue.session.scheme)
    assert confirmation.session_id == 4
    assert ue.superseded[3].keys != ue.session.keys
    assert ue.spoiled is None


def test_a_second_answer_after_the_session_was_used_spoils_what_follows(ue, peer):
    request = bytes(ue.session_request())
    peer.recv()
    peer.send(session_start(ue, request, 3, 1))
    ue.accept_session_start(ue.expect("session_start", timeout=0.5))
    ue.confirm()  # session 3 in use
    peer.recv()
    peer.send(session_start(ue, request, 4, 2))
    assert ue.receive(timeout=0.2) is None
    assert kinds(ue) == [STALE, SUPERSEDED]
    assert "superseded session 3" in ue.spoiled


def test_a_reject_of_another_command_is_not_the_answer(ue, peer):
    ue.session_request(imsi="001019999999999")
    peer.recv()
    peer.send(reject(ue, "authentication_failure", "session_start_confirmation"))
    assert ue.receive(timeout=0.2) is None
    assert kinds(ue) == [STALE]
    assert "Message Reject of a session_start_confirmation" in ue.notes[0]["description"]
    right = reject(ue)
    peer.send(right)
    assert bytes(ue.expect("message_reject", timeout=0.5)) == right


def test_an_answer_after_the_timeout_is_late_by_n_ms_not_silence(ue, peer):
    ue.session_request(imsi="001019999999999")
    peer.recv()
    answer = threading.Timer(0.3, peer.send, (reject(ue),))
    answer.start()
    with pytest.raises(LateReply, match=r"late by \d+ ms") as late:
        ue.expect("message_reject", timeout=0.2, grace=0.3)
    answer.join()
    assert 50 <= int(str(late.value).split("late by ")[1].split(" ms")[0]) <= 250
    assert kinds(ue) == ["late"]


def test_beyond_the_grace_it_is_silence(ue, peer):
    ue.session_request(imsi="001019999999999")
    peer.recv()
    answer = threading.Timer(0.4, peer.send, (reject(ue),))
    answer.start()
    with pytest.raises(NoReply):
        ue.expect("message_reject", timeout=0.2, grace=0.1)
    answer.join()


def test_silence_is_judged_on_what_follows_the_last_message_only(ue, peer):
    ue.session_request(imsi="001019999999999")
    peer.recv()
    peer.send(reject(ue))  # the answer to the first message, not read
    ue.send(bytes(ue.build_session_request(imsi="001019999999999", serving_network=False)))
    peer.recv()
    assert ue.expect_silence(0.1) is None  # what arrived before the second message left is not its answer
    assert kinds(ue) == [STALE]


def test_a_datagram_after_the_silence_window_before_the_next_message_is_not_judged(ue, peer):
    ue.session_request(imsi="001019999999999")
    peer.recv()
    assert ue.expect_silence(0.1, "the 100 ms silence window") is None
    peer.send(reject(ue))  # after the window, before the UE acts again
    ue.session_request()  # the next step acts: it reads what came first
    with pytest.raises(LateReply, match=r"arrived \d+ ms after the 100 ms silence window ended"):
        ue.receive(timeout=0.2)


def test_arrival_times_are_the_kernels_and_the_pcap_records_them(ue, peer, tmp_path):
    ue.session_request(imsi="001019999999999")
    peer.recv()
    sent = time.time_ns()
    peer.send(reject(ue), settle=0.2)  # read 200 ms after it arrived
    ue.expect("message_reject", timeout=0.5)
    assert 0 <= ue.received_at - sent < 50_000_000  # when it arrived, not when it was read
    ue.sock.tap.close()
    frames = list(udp_datagrams(tmp_path / "ue.pcap"))
    assert [src for _, _, src, _, _ in frames] == [frames[0][2], peer.address]
    assert frames[0][1] < frames[1][1]  # the request before its answer
    assert abs(frames[1][1] - ue.received_at / 1e9) < 1e-6


def test_an_icmp_port_unreachable_on_send_is_port_unreachable(profile):
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    address = closed.getsockname()
    closed.close()  # nothing listens there now
    credentials = Credentials.from_subscriber(profile.pixit.subscribers[0])
    with Ue(profile.binding, credentials, address, snn="5G:x", eas_id="eas.example.com") as role:
        role.session_request()
        time.sleep(0.05)  # the ICMP error comes back and waits on the socket
        with pytest.raises(PortUnreachable):
            role.session_request()


def test_notes_go_on_the_traced_datagram_they_are_about():
    items = [
        {"time": 100.000001, "src": "a:1", "dst": "b:2", "octets": 8},
        {"time": 100.000002, "src": "a:1", "dst": "b:2", "octets": 57},
    ]
    notes = [
        {"time": 100.0000021, "kind": DUPLICATE, "description": "a copy", "octets": 57},
        {"time": 200.0, "kind": "late", "description": "not captured", "octets": 8},
    ]
    annotate_trace(items, notes)
    assert "hygiene" not in items[0]
    assert items[1]["hygiene"] == [{"kind": DUPLICATE, "description": "a copy"}]
    assert items[2] == {"time": 200.0, "hygiene": [{"kind": "late", "description": "not captured"}]}


# ---- the engine against the reference HSE, through a relay ---------------------------------------------------


@contextlib.contextmanager
def behind(relay_of, profile: LoadedProfile, faults: frozenset[str] = frozenset()):
    """The embedded reference HSE behind a relay: (the profile pointed at the relay, certificates, the relay)."""
    with embedded_reference(profile, faults) as (running, certs), relay_of(running.hse_endpoint) as relay:
        data = running.profile.model_dump(mode="json", exclude_none=True)
        data["endpoints"]["hse"] = {"host": relay.address[0], "port": relay.address[1]}
        data["pixit"]["timing"] = "fixed"  # a network's delays, not the reference's round trip (roles/timing.py)
        target = load_profile(data)
        target.peers = running.peers
        yield target, certs, relay


def run(cases, target, certs, out: Path) -> dict[str, Result]:
    return {case.id: run_case(case, target, out, certs=certs) for case in cases}


def hygiene(results: dict[str, Result]) -> set[str]:
    return {h["kind"] for r in results.values() for item in r.trace for h in item.get("hygiene", ())}


def test_a_duplicating_network_leaves_every_conformant_verdict_unchanged(profile, tmp_path):
    """Every datagram delivered twice, both ways: the whole HSE suite gives what it gives without the relay."""
    direct = run_against_reference(profile, CASES.values(), tmp_path / "direct")
    with behind(duplicating, profile) as (target, certs, relay):
        through = run(CASES.values(), target, certs, tmp_path / "duplicated")
    copies = [d for d in relay.deliveries() if d.copy]
    changed = [explain(r) for i, r in through.items() if r.verdict is not direct[i].verdict]
    assert not changed
    assert len(copies) > 200  # the network really did duplicate, both ways
    assert {d.direction for d in copies} == {"up", "down"}
    assert {DUPLICATE, STALE, FOLLOWED} <= hygiene(through)  # and the evidence says what the UE set aside


SLICE = [  # a representative slice of every group, and the cases a duplicate used to break most
    "HSE-SR-001", "HSE-SR-005", "HSE-SR-021", "HSE-SS-005", "HSE-SS-010", "HSE-SS-011", "HSE-SS-012",
    "HSE-CT-001", "HSE-CT-004", "HSE-CT-005", "HSE-UP-001", "HSE-UP-003", "HSE-MK-001", "HSE-MK-003",
    "HSE-MK-004", "HSE-MK-006", "HSE-SC-001", "HSE-SC-002", "HSE-SC-003", "HSE-TE-001", "HSE-TE-002",
    "HSE-TE-004", "HSE-TE-005", "HSE-RJ-004", "HSE-MF-001", "HSE-KI-001", "HSE-EAS-002",
]  # fmt: skip


def test_copies_that_come_later_are_never_charged_to_the_sut(profile, tmp_path):
    """Each copy 20 ms after its original: the UE may already have moved on when a copy, or the HSE's answer to a
    copied Session Request, comes. Nothing is charged to the SUT; what the harness cannot repair (a session it
    used, superseded by the answer to a copy, before it learnt the path duplicates) is inconclusive, saying so."""
    with behind(lambda upstream: duplicating(upstream, gap=0.02), profile) as (target, certs, _):
        results = run((CASES[i] for i in SLICE), target, certs, tmp_path)
    charged = [explain(r) for r in results.values() if r.verdict in (Verdict.FAIL, Verdict.WARN, Verdict.ERROR)]
    assert not charged
    unjudged = [r for r in results.values() if r.verdict is Verdict.INCONCLUSIVE]
    assert all("duplicat" in r.reason for r in unjudged), [explain(r) for r in unjudged]
    assert len(unjudged) <= 2, [explain(r) for r in unjudged]  # at most until the path's copy delay is learnt


def test_faults_are_still_caught_behind_a_duplicating_network(profile, tmp_path):
    """Setting aside what the network did must not hide what the SUT did."""
    for fault in ("wrong_reply_command", "session_id_zero", "bad_autn_mac", "replay_accepted"):
        catchers = EXPECTED_CATCHERS["hse"][fault]
        with behind(duplicating, profile, frozenset({fault})) as (target, certs, _):
            results = run((CASES[i] for i in catchers), target, certs, tmp_path / fault)
        missed = [explain(r) for i, r in results.items() if r.verdict is not failing_verdict(CASES[i])]
        assert not missed, f"{fault}: {missed}"


def slow_profile(profile: LoadedProfile, reply_timeout: float = 0.4) -> LoadedProfile:
    data = profile.profile.model_dump(mode="json", exclude_none=True)
    data["pixit"]["reply_timeout"] = reply_timeout  # late grace: 0.1 s
    return load_profile(data)


def holding(kind: str, seconds: float, first_only: bool = False):
    """A relay factory: a network that holds back the HSE's datagrams of one kind (a command name, or "up")."""
    return lambda upstream: delaying(upstream, kind, seconds, first_only=first_only)


@pytest.mark.parametrize(
    ("held", "case", "step"),
    [("session_start", "HSE-SR-001", "expect"), ("session_start", "HSE-UP-001", "start_session"),
     ("up", "HSE-UP-001", "expect"), ("up", "HSE-CT-007", "expect")],
)  # fmt: skip
def test_an_answer_delayed_past_the_reply_timeout_is_late_by_n_ms(profile, tmp_path, held, case, step):
    with behind(holding(held, 0.44), slow_profile(profile)) as (target, certs, _):
        result = run_case(CASES[case], target, tmp_path, certs=certs)
    assert result.verdict is Verdict.INCONCLUSIVE, explain(result)
    assert "late by" in result.reason and "raise pixit.reply_timeout" in result.reason, result.reason
    late = int(result.reason.split("late by ")[1].split(" ms")[0])
    assert 10 <= late <= 100  # 440 ms held, a 400 ms window and 100 ms of grace
    assert any(h["kind"] == "late" for item in result.trace for h in item.get("hygiene", ()))


def test_a_delay_within_the_reply_timeout_changes_nothing(profile, tmp_path):
    with behind(holding("up", 0.2), slow_profile(profile)) as (target, certs, _):
        result = run_case(CASES["HSE-UP-001"], target, tmp_path, certs=certs)
    assert result.verdict is Verdict.PASS, explain(result)


LATE_AFTER_SILENCE = """
- id: T-LATE-{n}
  title: the answer to a forged message comes after the silence window
  refs: ["TS 33.163 6.2.2"]
  level: shall
  negative: true
  applies: {{sut: hse, pics: [modes.ue_to_hse]}}
  steps:
    - start_session: {{}}
    - send: user_data
      with: {{data: "forged", mac: corrupt}}
    - expect: silence
      within: 300ms
    - wait: 300ms
{proof}
"""
BY_SEND = """    - send: user_data
      with: {data: "genuine"}
    - expect: user_data
      check: {data: "genuine"}"""
BY_PROBE = "    - probe: session"


@pytest.mark.parametrize("proof", [BY_SEND, BY_PROBE], ids=["next-step-sends", "next-step-probes"])
def test_an_answer_after_the_silence_window_is_not_ignored(profile, tmp_path, proof):
    """An HSE that answers a message it had to discard (mac_not_verified) behind a network that holds its answer
    past the silence window: the case is not judged (inconclusive), never a pass. The same case with the answer
    on time fails at the silence step."""
    path = tmp_path / "late.yaml"
    path.write_text(LATE_AFTER_SILENCE.format(n=1, proof=proof))
    (case,) = load_cases([path], LintReport())
    with behind(holding("up", 0.45, first_only=True), profile, frozenset({"mac_not_verified"})) as running:
        late = run_case(case, running[0], tmp_path / "late", certs=running[1])
    assert late.verdict is Verdict.INCONCLUSIVE, explain(late)
    assert "after the 300 ms silence window ended" in late.reason, late.reason
    with behind(duplicating, profile, frozenset({"mac_not_verified"})) as running:
        on_time = run_case(case, running[0], tmp_path / "on-time", certs=running[1])
    assert on_time.verdict is Verdict.FAIL and on_time.expected == "nothing within 0.3s", explain(on_time)
