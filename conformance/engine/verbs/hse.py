"""Verbs of the HSE the harness plays towards a UE under test: `to_ue` sends the UE one message (and misbehaves on
purpose when `with:` says so), `from_ue` waits for the UE's next message and checks it, or for its silence.

The harness's HSE lives for the run (roles/hse.py, `ctx.hse`); the UE acts on its own only when a `trigger`
(engine/verbs/emse.py: session, send_data, manage_keys, terminate) tells it to. Checks on what the UE sent are
named under `check:` (engine/ue_checks.py).
"""

from __future__ import annotations

from typing import Any

from conformance.emsdp.values import tlv_values
from conformance.engine.context import Context
from conformance.engine.results import CheckFailed, Inconclusive, NoAnswer, NotJudged, Unanswered
from conformance.engine.schema import (
    STRING,
    Schema,
    binding_names,
    checks,
    names,
    not_with,
    only_with,
    options,
    step,
)
from conformance.engine.ue_checks import UE_CHECK_SCHEMAS, run_ue_checks
from conformance.engine.verbs.emse import trigger
from conformance.engine.verbs.registry import verb
from conformance.engine.verbs.ue import ABSENCES, NO_CHECK_ON_ABSENCE, _seconds
from conformance.roles.datagrams import SILENCE, late_grace
from conformance.roles.errors import NoReply, NotJudgeable, ProtocolError
from conformance.roles.hse import AUTN_FAULTS, HarnessHse

SILENCE_WINDOW = 0.3  # s: `from_ue: silence` without `within` (cut further by the PIXIT's timing)
START_OPTIONS = ("autn", "checksum", "service", "key_agreement", "mode")  # of a Session Start (HarnessHse)
PROTECTED = (  # what `to_ue` sends under the session's keys
    "user_data",
    "manage_keys_request",
    "session_terminate_request",
    "session_terminate_response",
    "message_reject",
    "unknown_command",
)
ALIASES = {"start_confirmation": "session_start_confirmation"}  # the plan's short name

TO_UE_SCHEMA = step(
    names("session_start", *PROTECTED, title="message"),
    with_=options(
        autn=names(*AUTN_FAULTS, title="AUTN fault"),
        checksum={"const": "corrupt"},
        service=binding_names("emsdp.hse_config.services", title="service"),
        key_agreement=binding_names("emsdp.ue_config.key_agreement_bits", title="key agreement"),
        mode=binding_names("emsdp.hse_config.modes", title="mode"),
        data=STRING,
        counter={
            "anyOf": [{"enum": ["replay", "skip"]}, {"type": "integer", "minimum": 0}],
            "description": "replay, skip or a counter value",
        },
        mac={"const": "corrupt"},
        key_id={"anyOf": [{"const": "stale"}, {"type": "integer", "minimum": 0}], "description": "stale or a Key ID"},
        cause=binding_names("emsdp.reject_causes", title="cause"),
        rejected_command=binding_names("emsdp.commands", title="command"),
    ),
    rules=[
        only_with(["session_start"], "checksum", "service", "key_agreement", "mode"),
        only_with(["session_start", "manage_keys_request"], "autn"),
        only_with(["user_data"], "data"),
        only_with(["message_reject"], "cause", "rejected_command"),
        not_with(["session_start"], "counter", "mac", "key_id"),
    ],
)


def _hse(ctx: Context) -> HarnessHse:
    return ctx.hse


@verb("to_ue", schema=TO_UE_SCHEMA)
def to_ue(ctx: Context, args: dict[str, Any]) -> None:
    """The harness's HSE sends the UE one message. The value: session_start (answers the UE's last Session
    Request: RAND, AUTN, HSE configuration, request checksum; after an AUTS, again on the same session),
    user_data (downlink), manage_keys_request (a fresh RAND and AUTN), session_terminate_request,
    session_terminate_response (answers the UE's Terminate Request; the session ends), message_reject (the session
    ends), unknown_command (a command code the binding does not define).
    with: autn (bad_mac: MAC-A one bit off | sqn_out_of_range: an SQN the USIM has seen | replay: the HSE's last
    vector again), checksum (corrupt), service, key_agreement, mode (the Session Start's HSE configuration;
    default the HSE's choice from the UE's offer, the subscriber and the PICS), data (the user data's text),
    counter (replay: the HSE's last message of this kind again, octet for octet | skip: five ahead of the next |
    N), mac (corrupt: one bit off), key_id (stale: a Key ID other than the session's, the MAC still under its
    keys | N: 0 sends it without MAC), cause and rejected_command (of a Message Reject; default unknown_session,
    and the command of the UE's last message)."""
    hse, what, given = _hse(ctx), args["_value"], dict(args.get("with") or {})
    try:
        if what == "session_start":
            start = {k: given[k] for k in START_OPTIONS if k in given}
            ctx.saved["hse.start"] = start  # for a resynchronisation the UE's USIM asks for (`from_ue`)
            hse.session_start(**start)
            return
        session = hse.session
        if session is None and what != "message_reject":
            raise Inconclusive(f"cannot send {what}: no BEST session with the UE")
        if given.get("counter") == "replay":
            raw = session.sent.get(what) if session is not None else None
            if raw is None:
                raise Inconclusive(f"the HSE sent no {what} yet to replay")
            hse.send(raw, session)
            return
        message = _message(ctx, hse, what, given)
        if given.get("mac") == "corrupt" and message.mac:
            message = message.with_mac(bytes([message.mac[0] ^ 0x01]) + message.mac[1:])
        if "key_id" in given and session is not None:
            key_id = given["key_id"]
            if key_id == "stale":
                key_id = next(k for k in range(1, 8) if k != session.key_id)
            message = hse.with_key_id(message, key_id)
        hse.send(message, session)
    except ProtocolError as exc:
        raise Inconclusive(f"the harness's HSE cannot send {what}: {exc}") from None
    if what in ("session_terminate_response", "message_reject"):
        hse.end(f"the HSE sent a {what}")


SKIP = 5  # `counter: skip`: the HSE's counter jumps this far ahead, as if the messages between were lost


def _message(ctx: Context, hse: HarnessHse, what: str, given: dict[str, Any]) -> Any:
    counter = given.get("counter")
    if counter == "skip":
        hse.skip("up" if what == "user_data" else "cp", SKIP)
        counter = None
    counter = int(counter) if counter is not None else None
    if what == "user_data":
        text = str(given.get("data", "conformance"))
        ctx.saved["hse.downlink_data"] = text
        return hse.user_data(text.encode("utf-8"), counter=counter)
    if what == "manage_keys_request":
        return hse.manage_keys_request(autn=given.get("autn"), counter=counter)
    if what == "message_reject":
        last = hse.last_from_ue
        named = given.get("rejected_command")
        rejected = hse.layout.commands[named] if named else (last.command if last is not None else None)
        return hse.message_reject(str(given.get("cause", "unknown_session")), rejected)
    code = hse.unknown_command_code() if what == "unknown_command" else what
    return hse.protected(code, [], counter=counter)


FROM_UE_SCHEMA = step(
    binding_names("emsdp.commands", plus=("user_data", *ABSENCES, *ALIASES), title="message"),
    within=True,
    check=checks(UE_CHECK_SCHEMAS),
    rules=[NO_CHECK_ON_ABSENCE],
)


@verb("from_ue", schema=FROM_UE_SCHEMA)
def from_ue(ctx: Context, args: dict[str, Any]) -> None:
    """The harness's HSE waits for the UE's next message, which must be the one named (a command of the binding,
    start_confirmation for session_start_confirmation, or user_data), and checks it; or, with silence, that the
    UE sends nothing (within: default 300ms, cut to the PIXIT's timing; a later step must show the UE still
    serving); or, with silence_or_reject, that it sends nothing but a Message Reject (of any cause): whether the
    UE rejects or discards is policy, that it does not act on the message is not.
    within: how long to wait (default the PIXIT's reply timeout). check: the UE checks (identity, session_id,
    key_id, counter, rfu, up_cp, serving_network, ue_config, enterprise_setup, mandatory_tlvs, res, auts, mac,
    data, ciphered, cause, rejected_command, no_problems).
    A protected message whose MAC verifies and whose counter is fresh is taken as the UE's; a right RES sets the
    session up (or, in a Manage Keys Response, keys the next session); an AUTS that verifies resynchronises the
    HSE's SQN. If the UE answers a valid Session Start with an AUTS (its USIM is ahead of the HSE), the HSE
    resynchronises and sends a new Session Start once, as an HSE does, and goes on waiting. Network duplicates
    and what the UE sent before the case acted are set aside (noted in the trace)."""
    hse, what = _hse(ctx), ALIASES.get(args["_value"], args["_value"])
    given = None if args.get("within") is None else _seconds(args["within"], 0.0)
    try:
        if what in (SILENCE, "silence_or_reject"):
            window = hse.timing.silence(SILENCE_WINDOW if given is None else given)
            packet = hse.wire.expect_silence(window, f"the {window * 1000:.0f} ms window for {what}")
            if packet is None or (what != SILENCE and hse.name(packet) == "message_reject"):
                return
            expectation = "silence" if what == SILENCE else "no service: silence or a Message Reject"
            raise CheckFailed(expectation, f"nothing else within {window}s", hse.codec.describe(packet))
        window = hse.timing.reply() if given is None else given
        checks_given = args.get("check") or {}
        packet = _receive(hse, what, window)
        if _ue_resynchronises(ctx, hse, packet, checks_given):
            packet = _receive(hse, what, window)
    except NotJudgeable as exc:
        raise NotJudged(str(exc)) from None
    run_ue_checks(ctx, hse, packet, checks_given)
    _took(ctx, hse, packet, what)


def _receive(hse: HarnessHse, what: str, window: float) -> Any:
    packet = hse.receive(window, grace=late_grace(window), expecting="up" if what == "user_data" else what)
    if packet is None:
        aside = [f"{note['kind']}: {note['description']}" for note in hse.notes]
        raise NoAnswer(
            f"a {what} from the UE", f"within {window}s", "silence" + (f" (set aside: {aside})" if aside else "")
        )
    got = hse.name(packet)
    if got != what:
        raise CheckFailed(f"a {what} from the UE", what, {"received": got, "message": hse.codec.describe(packet)})
    return packet


def _ue_resynchronises(ctx: Context, hse: HarnessHse, packet: Any, checks_given: dict[str, Any]) -> bool:
    """A Start Confirmation with AUTS where the case sent a valid AUTN and does not check for AUTS: the UE's USIM
    is ahead of the HSE's SQN (a real USIM keeps its SQN from run to run). Resynchronise and answer again."""
    if hse.name(packet) != "session_start_confirmation" or packet.key_id or "auts" in checks_given:
        return False
    start = dict(ctx.saved.get("hse.start") or {})
    auts = tlv_values(packet).get("auts")
    if auts is None or start.get("autn") or hse.resynchronise(auts) is not None:
        return False
    ctx.saved.setdefault("unchecked", []).append(
        "the UE's USIM was ahead of the harness HSE's SQN: the HSE resynchronised with its AUTS and sent a new "
        "Session Start"
    )
    try:
        hse.session_start(**start)
    except ProtocolError as exc:
        raise Inconclusive(f"the harness's HSE cannot answer the AUTS: {exc}") from None
    return True


def _took(ctx: Context, hse: HarnessHse, packet: Any, what: str) -> None:
    """What the HSE does with the UE's message once the checks passed."""
    ctx.last["hse"] = packet
    values = tlv_values(packet)
    if packet.key_id:
        hse.accept(packet)
    if "auts" in values:
        hse.resynchronise(values["auts"])
    elif hse.res_correct(values.get("res")):
        hse.confirmed(packet)
    if what in ("session_terminate_response", "message_reject"):
        hse.end(f"the UE sent a {what}")


START_SCHEMA: Schema = {
    **options(**{k: TO_UE_SCHEMA["properties"]["with"]["properties"][k] for k in START_OPTIONS[2:]})
}
START_SCHEMA["type"] = ["object", "null"]


@verb("ue_session", schema=step(START_SCHEMA))
def ue_session(ctx: Context, args: dict[str, Any]) -> None:
    """Preamble: a BEST session with the UE. The session trigger, the UE's Session Request, a valid Session Start
    (the value: service, key_agreement, mode of its HSE configuration, default the HSE's choice), and the UE's
    Start Confirmation with the right RES and a MAC that verifies (after a resynchronisation, if the UE's USIM
    was ahead of the HSE). A failure here makes the case inconclusive, not failed."""
    start = dict(args.get("_value") or {})
    trigger(ctx, {"_value": "session"})
    try:
        hse = _hse(ctx)
        window = hse.timing.reply()
        _receive(hse, "session_request", window)
        ctx.saved["hse.start"] = start
        hse.session_start(**start)
        packet = _receive(hse, "session_start_confirmation", window)
        if _ue_resynchronises(ctx, hse, packet, {}):
            packet = _receive(hse, "session_start_confirmation", window)
        run_ue_checks(ctx, hse, packet, {"res": "correct", "mac": "verifies"})
        _took(ctx, hse, packet, "session_start_confirmation")
    except NotJudgeable as exc:
        raise NotJudged(str(exc)) from None
    except (NoAnswer, NoReply) as exc:
        raise Unanswered(f"could not set up a BEST session with the UE: {exc}") from None
    except (CheckFailed, ProtocolError) as exc:
        raise Inconclusive(f"could not set up a BEST session with the UE: {exc}") from None
