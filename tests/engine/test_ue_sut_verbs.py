"""The verbs towards a UE under test (engine/verbs/hse.py, trigger's UE triggers, engine/ue_checks.py): each check
fails, with expected and observed evidence, on a message with the fault it looks for; the verbs run through the
engine from YAML against a scripted conformant UE; the linter and the runner ask a silence for its proof of life."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import conformance.engine.model as model
from conformance.capture.tap import PcapTap
from conformance.engine.context import Context
from conformance.engine.lint import load_suite
from conformance.engine.peers import Peers, harness_peers
from conformance.engine.results import CheckFailed, Inconclusive, NoAnswer, NotRun, Verdict
from conformance.engine.runner import run_case
from conformance.engine.verbs import VERBS
from tests.roles.scripted_ue import ScriptedUe
from tests.roles.test_hse_role import harness_hse, make_ue, ue_profile


@pytest.fixture(autouse=True)
def ue_kind(monkeypatch):
    """Cases for a UE under test load whether or not the ledger lists the kind yet."""
    if "ue" not in model.SUT_KINDS:
        monkeypatch.setattr(model, "SUT_KINDS", (*model.SUT_KINDS, "ue"))


@pytest.fixture
def ctx(tmp_path):
    profile = ue_profile()
    with harness_hse(profile) as hse:
        profile.peers = Peers(None, {}, hse)
        context = Context(profile, tmp_path / "case.pcap")
        yield context
        context.close()


def step(ctx: Context, verb: str, value: object = None, **args: object) -> None:
    VERBS[verb](ctx, {"_value": value, **args})


def fails(ctx: Context, value: str, check: dict[str, object]) -> CheckFailed:
    with pytest.raises(CheckFailed) as failure:
        step(ctx, "from_ue", value, check=check, within=1)
    assert failure.value.expected is not None and failure.value.observed is not None
    return failure.value


def request(ctx: Context, ue, **options: object) -> None:
    """The UE sends a Session Request as if triggered (the same request untriggered is a network duplicate)."""
    ctx.hse.triggered()
    ue.session_request(**options)


def start(ctx: Context, ue, **options: object) -> None:
    request(ctx, ue, **options)
    step(ctx, "from_ue", "session_request")
    step(ctx, "to_ue", "session_start")
    assert ue.accept_session_start(ue.expect("session_start")).outcome.value == "ok"


def test_session_request_checks_pass_and_fail(ctx):
    with make_ue(ctx.profile, ctx.hse) as ue:
        request(ctx, ue, key_agreements=tuple(ctx.profile.pics.key_agreements), confidentiality=True)
        good = {"identity": "imsi", "session_id": 0, "key_id": 0, "counter": 0, "rfu": 0, "up_cp": 0}
        step(
            ctx,
            "from_ue",
            "session_request",
            check={
                **good,
                "serving_network": "present",
                "enterprise_setup": True,
                "ue_config": "matches_pics",
                "mandatory_tlvs": True,
                "no_problems": True,
            },
        )
        for check, observed in (
            ({"identity": "suci"}, {"identity": "imsi", "imsi": ue.credentials.imsi}),
            ({"session_id": 1}, 0),
            ({"counter": {"not": 0}}, 0),
        ):
            request(ctx, ue)
            assert fails(ctx, "session_request", check).observed == observed
        request(ctx, ue, imsi="001010000000002")
        assert "pixit.subscribers[0]" in fails(ctx, "session_request", {"identity": "imsi"}).expectation
        request(ctx, ue, serving_network=False)
        assert fails(ctx, "session_request", {"serving_network": "present"}).observed == "absent"
        request(ctx, ue)
        assert fails(ctx, "session_request", {"serving_network": "absent"}).observed.startswith("5G:")
        request(ctx, ue, key_agreements=("umts",))
        assert fails(ctx, "session_request", {"ue_config": "matches_pics"}).observed["key_agreements"] == ["umts"]
        request(ctx, ue, eas_id="other.example.com")
        assert fails(ctx, "session_request", {"enterprise_setup": True}).observed == "other.example.com"
        ue.send(ue.codec.cp("session_request", [("imsi", b"\x09" * 8)], key_id=0, counter=0, session_id=0))
        assert "missing" in fails(ctx, "session_request", {"mandatory_tlvs": True}).observed


def test_start_confirmation_checks_pass_and_fail(ctx):
    with make_ue(ctx.profile, ctx.hse) as ue:
        start(ctx, ue)
        ue.confirm(res=bytes(8))
        failure = fails(ctx, "start_confirmation", {"res": "correct"})
        assert failure.expected == ctx.hse.vector.xres.hex()
        message = ue.protected("session_start_confirmation", [("res", ue.session.res)])
        ue.send(message.with_mac(bytes([message.mac[0] ^ 1]) + message.mac[1:]))
        assert fails(ctx, "start_confirmation", {"mac": "verifies"}).expected == "verifies"
        ue.confirm()
        step(
            ctx,
            "from_ue",
            "start_confirmation",
            check={"res": "correct", "mac": "verifies", "key_id": "session", "session_id": "session"},
        )
        assert ctx.hse.session.confirmed


def test_auts_is_verified_and_resynchronises(ctx):
    with make_ue(ctx.profile, ctx.hse) as ue:
        request(ctx, ue)
        step(ctx, "from_ue", "session_request")
        step(ctx, "to_ue", "session_start", **{"with": {"autn": "sqn_out_of_range"}})
        packet = ue.expect("session_start")
        check = ue.accept_session_start(packet)
        ue.send_auts(bytes(14), packet.session_id)
        assert "MAC-S" in fails(ctx, "start_confirmation", {"auts": "verifies"}).observed
        ue.send_auts(check.auts, packet.session_id)
        step(ctx, "from_ue", "start_confirmation", check={"auts": "verifies", "key_id": 0})
        step(ctx, "to_ue", "session_start")
        assert ue.accept_session_start(ue.expect("session_start")).outcome.value == "ok"


def test_a_usim_ahead_of_the_hse_is_followed_not_failed(ctx):
    ahead = (int.from_bytes(ctx.profile.pixit.subscribers[0].sqn, "big") + (9 << 5)).to_bytes(6, "big")
    with make_ue(ctx.profile, ctx.hse, sqn=ahead) as ue:
        ue.session_request()
        step(ctx, "from_ue", "session_request")
        step(ctx, "to_ue", "session_start")
        packet = ue.expect("session_start")
        ue.send_auts(ue.accept_session_start(packet).auts, packet.session_id)
        # the HSE resynchronises and answers again on its own; the UE confirms that one

        def confirm() -> None:
            again = ue.expect("session_start", timeout=2)
            ue.accept_session_start(again)
            ue.confirm()

        helper = threading.Thread(target=confirm)
        helper.start()
        step(ctx, "from_ue", "start_confirmation", check={"res": "correct"}, within=2)
        helper.join()
        assert "resynchronised" in ctx.saved["unchecked"][0]


def test_user_plane_checks_pass_and_fail(ctx):
    with make_ue(ctx.profile, ctx.hse) as ue:
        start(ctx, ue, confidentiality=True)
        ue.confirm()
        step(ctx, "from_ue", "start_confirmation")
        step(ctx, "to_ue", "user_data", **{"with": {"data": "down"}})
        assert ue.check_downlink(ue.expect(None)) == b"down"
        ue.send(ue.user_data(b"down"))
        step(
            ctx, "from_ue", "user_data", check={"data": "down", "ciphered": True, "counter": "fresh", "mac": "verifies"}
        )
        ue.send(ue.user_data(b"other"))
        assert fails(ctx, "user_data", {"data": "down"}).observed == "other"
        ue.send(ue.user_data(b"again", counter=1))  # a new message under a spent counter
        assert fails(ctx, "user_data", {"counter": "fresh"}).observed == 1
        clear = ue.security.protected_up(
            b"down",
            ue.session.keys,
            session_id=ue.session.id,
            counter=9,
            scheme=ue.session.scheme,
            key_id=1,
            direction="uplink",
            cipher=False,
        )
        ue.send(clear)
        assert fails(ctx, "user_data", {"ciphered": True}).expected == "not the plaintext"


def test_reject_checks_and_the_downlink_faults(ctx):
    with make_ue(ctx.profile, ctx.hse) as ue:
        start(ctx, ue)
        ue.confirm()
        step(ctx, "from_ue", "start_confirmation")
        for options in ({"counter": "skip"}, {"mac": "corrupt"}, {"key_id": "stale"}, {"key_id": 0}):
            step(ctx, "to_ue", "user_data", **{"with": {"data": "x", **options}})
            sent = ue.expect(None)
            if "counter" in options:
                assert sent.counter == 6
            elif "mac" in options:
                assert not ue.security.verify(sent, ue.session.keys, "downlink")
            else:
                assert sent.key_id == (2 if options["key_id"] == "stale" else 0)
        step(ctx, "to_ue", "user_data", **{"with": {"counter": "replay"}})
        assert ue.receive(0.2) is None and ue.notes[-1]["kind"] == "duplicate"  # the same octets again
        step(ctx, "to_ue", "unknown_command")
        assert ue.receive(1.0).command == ctx.hse.unknown_command_code()
        ue.send_protected("message_reject", [("cause", bytes([ue.layout.causes["unknown_command"]]))])
        assert fails(ctx, "message_reject", {"cause": "mac_failure"}).observed == "unknown_command"
        step(ctx, "to_ue", "message_reject", **{"with": {"cause": "unknown_session"}})
        assert ctx.hse.session.over  # the HSE rejected it: the session is over, a step may still send on it
        assert ue.says_unknown_session(ue.receive(1.0))
        step(ctx, "to_ue", "user_data")
        assert ue.receive(1.0).plane == "up"
    ctx.hse.session = None
    with pytest.raises(Inconclusive, match="no BEST session"):
        step(ctx, "to_ue", "user_data")


def test_silence_passes_on_nothing_and_fails_on_a_message(ctx):
    with make_ue(ctx.profile, ctx.hse) as ue:
        step(ctx, "from_ue", "silence", within="50ms")
        ue.session_request()
        with pytest.raises(CheckFailed, match="silence"):
            step(ctx, "from_ue", "silence", within="200ms")
        with pytest.raises(NoAnswer):
            step(ctx, "from_ue", "session_request", within="50ms")


def test_a_missing_trigger_is_not_run(ctx):
    with pytest.raises(NotRun, match=r"pixit\.triggers\.send_data"):
        step(ctx, "trigger", "send_data", **{"with": {"data": "x"}})


CASES = """
- id: UE-X-001
  title: a whole session with the UE, through the engine
  refs: ["TS 33.163 4.3.2"]
  requirements: [BEST-UE-003]
  level: shall
  applies: {sut: ue}
  steps:
    - trigger: session
    - from_ue: session_request
      check: {identity: imsi, session_id: 0, key_id: 0, counter: 0, rfu: 0, serving_network: present,
              ue_config: matches_pics, enterprise_setup: true}
    - to_ue: session_start
    - from_ue: start_confirmation
      check: {res: correct, mac: verifies, key_id: session}
    - to_ue: user_data
      with: {data: "looped"}
    - from_ue: user_data
      check: {data: "looped", mac: verifies, counter: fresh}
    - trigger: send_data
      with: {data: "uplink"}
    - from_ue: user_data
      check: {data: "uplink", ciphered: true}
    - to_ue: manage_keys_request
    - from_ue: manage_keys_response
      check: {res: correct, mac: verifies}
    - trigger: manage_keys
    - from_ue: manage_keys_request
      check: {mac: verifies, counter: fresh}
    - to_ue: session_terminate_request
    - from_ue: session_terminate_response
      check: {mac: verifies, session_id: session}
- id: UE-X-002
  title: a forged downlink message is dropped; the UE still serves
  refs: ["TS 33.163 6.2.2"]
  requirements: [BEST-UE-005]
  level: shall
  negative: true
  applies: {sut: ue}
  steps:
    - ue_session: {service: up_integrity}
    - to_ue: user_data
      with: {data: "forged", mac: corrupt}
    - from_ue: silence
      within: 300ms
    - to_ue: user_data
      with: {data: "genuine"}
    - from_ue: user_data
      check: {data: "genuine"}
- id: UE-X-003
  title: a wrong AUTN MAC is rejected with cause mac_failure
  refs: ["TS 33.102 6.3.3"]
  requirements: [AKA-102-101]
  level: shall
  negative: true
  applies: {sut: ue}
  steps:
    - trigger: session
    - from_ue: session_request
    - to_ue: session_start
      with: {autn: bad_mac}
    - from_ue: message_reject
      check: {cause: mac_failure}
    - trigger: session
    - from_ue: session_request
    - to_ue: session_start
    - from_ue: start_confirmation
      check: {res: correct}
- id: UE-X-004
  title: a silence no later step proves is inconclusive
  refs: ["TS 33.163 6.2.2"]
  requirements: [BEST-UE-005]
  level: shall
  applies: {sut: ue}
  steps:
    - ue_session: {}
    - from_ue: silence
      within: 100ms
"""


def test_cases_run_through_the_engine_against_a_scripted_ue(tmp_path):
    path = tmp_path / "ue.yaml"
    path.write_text(CASES)
    cases, report = load_suite([path])
    assert len(report.errors) == 1 and "case UE-X-004: line" in report.errors[0]  # requirement ids are the ledger's
    assert "(from_ue silence) expects absence on the SUT's EMSDP endpoint" in report.errors[0]
    profile = ue_profile(timing="measured")
    with harness_peers(profile) as peers, ScriptedUe(profile, peers.hse.address) as ue:
        peers.triggers = ue.triggers
        profile.peers = peers
        results = {case.id: run_case(case, profile, tmp_path) for case in cases}
        for case_id in ("UE-X-001", "UE-X-002", "UE-X-003"):
            assert results[case_id].verdict is Verdict.PASS, (case_id, results[case_id].reason)
        assert results["UE-X-004"].verdict is Verdict.INCONCLUSIVE
        trace = results["UE-X-001"].trace
        assert [t["command"]["name"] for t in trace[:2] if "command" in t] == ["session_request", "session_start"]
        assert Path(results["UE-X-001"].pcap).stat().st_size > 24
        ue.mute = True  # a dead UE: its silence proves nothing, the case is not passed
        result = run_case(cases[1], profile, tmp_path)
        assert result.verdict is Verdict.INCONCLUSIVE, result.reason


def test_a_ue_kind_context_opens_no_ue_towards_an_hse(ctx):
    with pytest.raises(RuntimeError, match="plays the HSE"):
        ctx.ue()
    assert isinstance(ctx.tap, PcapTap) and ctx.hse.wire.link.sock.tap is ctx.tap
