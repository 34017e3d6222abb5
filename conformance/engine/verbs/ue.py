"""Verbs of the UE the harness plays towards an HSE: set up a session, send, expect, answer Manage Keys, wait,
probe. `with:` gives options, `as:` names the UE (default "ue")."""

from __future__ import annotations

import time
from typing import Any

from conformance.crypto.aka import AutnOutcome
from conformance.emsdp.values import tlv_values
from conformance.engine.context import Context, NotApplicable, NotRun
from conformance.engine.diagnosis import unanswered_protection
from conformance.engine.expected_keys import key_id_for
from conformance.engine.hygiene import others_judged, silence_seen, spoiled_by_network
from conformance.engine.matchers import MATCHER_SCHEMAS, note_vector, run_checks
from conformance.engine.results import CheckFailed, Inconclusive, NoAnswer, NotJudged, Unanswered
from conformance.engine.schema import (
    DURATION,
    NOTHING,
    STRING,
    TRUE,
    Schema,
    binding_names,
    checks,
    mapping,
    names,
    needs,
    not_here,
    not_with,
    only_with,
    options,
    step,
    when,
)
from conformance.engine.verbs.registry import verb
from conformance.roles.datagrams import late_grace
from conformance.roles.errors import NoReply, NotJudgeable, PortUnreachable, ProtocolError


def _ue(ctx: Context, args: dict[str, Any]):
    options = args.get("with") or {}
    subscriber = options.get("subscriber", 0)
    if isinstance(subscriber, dict):
        subscriber = _subscriber_restricted_to(ctx, subscriber)
    name, ahead = args.get("as", "ue"), options.get("sqn_ahead", 0)
    network_sqn = _network_sqn(ctx, name, subscriber) if ahead and name not in ctx.ues else b""
    return ctx.ue(name, subscriber, sqn_offset=ahead, sqn_from=network_sqn)


def _network_sqn(ctx: Context, name: str, subscriber: int) -> bytes:
    """The SQN the SUT's next vector for this subscriber is at least: read from a Session Start a throwaway UE
    asks for (and abandons). A USIM set "ahead" of the PIXIT's SQN alone would not be ahead of an HSE that ran
    many sessions before (a lab's SUT keeps its SQNs from run to run)."""
    ue = ctx.ue(f"{name}.sqn-probe", subscriber)
    try:
        ue.session_request()
        start = ue.expect("session_start", timeout=ue.timeout)
        values = tlv_values(start)
        if "rand" not in values or "autn" not in values:
            raise ProtocolError(f"the Session Start carries no {'RAND' if 'rand' not in values else 'AUTN'}")
        check = ue.usim.authenticate(values["rand"], values["autn"], require_separation_bit=False)
        note_vector(ctx, ue, start)
    except PortUnreachable:
        raise
    except (ProtocolError, ValueError) as exc:  # a Session Start the USIM cannot even read
        raise Inconclusive(f"could not learn the SUT's SQN for a USIM ahead of it: {exc}") from None
    if check.outcome is AutnOutcome.MAC_FAILURE:
        raise Inconclusive(f"could not learn the SUT's SQN for a USIM ahead of it: {check.reason}")
    return check.sqn


def _subscriber_restricted_to(ctx: Context, wanted: dict[str, str]) -> int:
    """The first PIXIT subscriber the SUT allows only this service or mode, e.g. {services: key_agreement_only}
    or {modes: ue_to_eas}: how a case reaches a service the SUT chooses for the subscriber."""
    for index, subscriber in enumerate(ctx.profile.pixit.subscribers):
        if all(getattr(subscriber, field) == [value] for field, value in wanted.items()):
            return index
    raise NotRun(f"no test subscriber in the PIXIT (pixit.subscribers) is restricted to {wanted}")


def _seconds(value: Any, default: float) -> float:
    if value is None:
        return default
    text = str(value).strip()
    return float(text[:-2]) / 1000 if text.endswith("ms") else float(text.rstrip("s"))


_REQUEST_OPTIONS = ("identity", "key_agreements", "confidentiality", "serving_network", "eas_id", "release", "imsi")


def _request_options(ctx: Context, ue: Any, options: dict[str, Any]) -> dict[str, Any]:
    kwargs = {k: options[k] for k in _REQUEST_OPTIONS if k in options}
    if "key_agreements" in kwargs:
        kwargs["key_agreements"] = tuple(kwargs["key_agreements"])
    if "imsi" in kwargs:
        kwargs["imsi"] = str(kwargs["imsi"])
    if options.get("identity") == "suci":
        kwargs["suci"] = _suci(ctx, ue, options.get("suci_profile", "A"))
    return kwargs


def _session_request(ctx: Context, ue: Any, options: dict[str, Any]) -> None:
    ue.session_request(**_request_options(ctx, ue, options))


def _suci(ctx: Context, ue: Any, profile_name: str) -> bytes:
    from conformance.emsdp.ue_side import suci_identity

    if profile_name not in ctx.profile.pics.suci_profiles:
        raise NotApplicable(f"the SUT does not claim SUCI profile {profile_name}")
    key = next((k for k in ctx.profile.pixit.home_network_keys if k.profile == profile_name), None)
    if key is None:
        raise NotRun(f"no home network public key for profile {profile_name} in the PIXIT (pixit.home_network_keys)")
    return suci_identity(ue.layout, ue.credentials.imsi, key.id, key.public_key, profile_name)[1]


# ---- what the steps take (engine.schema; the linter checks every step against its verb's schema) -------------

UE_OPTIONS: dict[str, Schema] = {  # how a step's UE is made on its first use (_ue)
    "subscriber": {
        "anyOf": [
            {"type": "integer", "minimum": 0},
            {
                **mapping(
                    {
                        "services": binding_names("emsdp.hse_config.services", title="service"),
                        "modes": binding_names("emsdp.hse_config.modes", title="mode"),
                        "key_agreements": binding_names("emsdp.ue_config.key_agreement_bits", title="key agreement"),
                        "eas_ids": STRING,
                    }
                ),
                "minProperties": 1,
            },
        ],
        "description": "a PIXIT subscriber index or a restriction such as {services: key_agreement_only}",
    },
    "sqn_ahead": {"type": "integer", "minimum": 0},
}
REQUEST_OPTIONS: dict[str, Schema] = {  # the Session Request's (_request_options)
    "identity": names("imsi", "suci"),
    "suci_profile": names("A", "B"),
    "key_agreements": {
        "type": "array",
        "items": binding_names("emsdp.ue_config.key_agreement_bits", title="key agreement"),
    },
    "confidentiality": {"type": "boolean"},
    "serving_network": {"type": "boolean"},
    "eas_id": STRING,
    "release": {"type": "integer", "minimum": 0, "maximum": 255},
    "imsi": {"type": "string", "pattern": "^[0-9]{5,15}$", "description": "an IMSI: its digits, quoted"},
}
SUCI_PROFILE_NEEDS_SUCI: Schema = {
    "suci_profile": {
        "required": ["identity"],
        "properties": {"identity": {"const": "suci"}},
        "description": "suci_profile needs identity: suci",
    }
}
START_SESSION_SCHEMA = step(
    NOTHING,
    with_={
        **options(**REQUEST_OPTIONS, **UE_OPTIONS, confirm={"type": "boolean"}),
        "dependentSchemas": SUCI_PROFILE_NEEDS_SUCI,
    },
    as_=True,
)


@verb("start_session", schema=START_SESSION_SCHEMA)
def start_session(ctx: Context, args: dict[str, Any]) -> None:
    """Preamble: Session Request, a Session Start whose AUTN the USIM accepts, Start Confirmation with RES.
    with: the Session Request options (identity, key_agreements, confidentiality, serving_network, eas_id),
    subscriber (index in the PIXIT, or e.g. {services: key_agreement_only}: one restricted to it).
    A failure here makes the case inconclusive, not failed."""
    try:
        _set_up(ctx, args)
    except PortUnreachable:
        raise
    except NotJudgeable as exc:
        raise NotJudged(str(exc)) from None
    except NoReply as exc:
        raise Unanswered(f"could not set up a BEST session: {exc}") from None
    except ProtocolError as exc:
        raise Inconclusive(f"could not set up a BEST session: {exc}") from None


def _set_up(ctx: Context, args: dict[str, Any]) -> None:
    """A BEST session for the step's UE; ProtocolError (NoReply on silence) says why not, LateReply (a
    NotJudgeable) that the Session Start came after the reply timeout."""
    ue = _ue(ctx, args)
    options = dict(args.get("with") or {})
    _session_request(ctx, ue, options)
    window = ue.timeout
    start = ue.expect("session_start", timeout=window, grace=late_grace(window))
    note_vector(ctx, ue, start)
    check = ue.accept_session_start(start)
    if check.outcome is not AutnOutcome.OK:
        raise ProtocolError(f"the USIM refused AUTN: {check.outcome.value} ({check.reason})")
    ue.follow_answer()  # a duplicated Session Request: the session the HSE kept
    if options.get("confirm", True):
        _sent(ctx, args, "session_start_confirmation", bytes(ue.confirm()))


def _sent(ctx: Context, args: dict[str, Any], what: str, raw: bytes) -> None:
    """Keep the last message of each command the step's UE sent: what `counter: replay` sends again."""
    ctx.saved.setdefault(f"{args.get('as', 'ue')}.sent", {})[what] = raw


PROTECTED_OPTIONS = ("counter", "mac", "key_id")  # of a message under the session's keys (_protected)
SEND_SCHEMA = step(
    binding_names("emsdp.commands", plus=("user_data", "unknown_command", "raw"), title="message"),
    with_={
        **options(
            **REQUEST_OPTIONS,
            **UE_OPTIONS,
            mutate=names("truncate", "overlong_tlv", "unknown_tag", "version_bits", title="mutation"),
            hex={"type": "string", "pattern": "^[0-9a-fA-F ]*$", "description": "hexadecimal octets"},
            res=names("right", "wrong", "none"),
            auts=TRUE,
            data=STRING,
            mac={"const": "corrupt"},
            counter={
                "anyOf": [{"const": "replay"}, {"type": "integer", "minimum": 0}],
                "description": "replay or a counter value",
            },
            key_id={"type": "integer", "minimum": 0},
        ),
        "dependentSchemas": SUCI_PROFILE_NEEDS_SUCI,
    },
    as_=True,
    rules=[
        needs(["raw"], "hex"),
        only_with(["raw"], "hex"),
        only_with(["session_request"], "mutate", *REQUEST_OPTIONS),
        only_with(["session_start_confirmation"], "res", "auts"),
        only_with(["user_data"], "data"),
        not_with(["session_request", "raw"], *PROTECTED_OPTIONS),
    ],
)


@verb("send", schema=SEND_SCHEMA)
def send(ctx: Context, args: dict[str, Any]) -> None:
    """Send one message. The value names it: session_request, session_start_confirmation, user_data,
    manage_keys_request, manage_keys_response, session_terminate_request, session_terminate_response,
    unknown_command, raw. with: res (right|wrong|none), auts (true), data, mac (corrupt), counter (replay|N:
    replay sends the UE's last message of this command again, octet for octet, whatever happened since), key_id,
    hex (for raw), mutate (truncate|overlong_tlv|unknown_tag|version_bits, on a Session Request)."""
    ue = _ue(ctx, args)
    what = args["_value"]
    options = dict(args.get("with") or {})
    if what == "session_request":
        if "mutate" in options:
            ue.send(_mutated_request(ctx, ue, options))
        else:
            _session_request(ctx, ue, options)
        return
    if what == "raw":
        ue.send(bytes.fromhex(str(options["hex"]).replace(" ", "")))
        return
    if what == "session_start_confirmation" and options.get("auts"):
        auts = ctx.saved.get(f"{args.get('as', 'ue')}.auts")
        if auts is None:
            raise Inconclusive("no AUTS: the USIM did not report a synchronisation failure")
        _sent(ctx, args, what, bytes(ue.send_auts(auts, ctx.saved[f"{args.get('as', 'ue')}.session_id"])))
        return
    if ue.session is None:
        raise Inconclusive(f"cannot send {what}: no BEST session")
    message = _protected(ctx, ue, what, options, ctx.saved.get(f"{args.get('as', 'ue')}.sent", {}))
    if options.get("mac") == "corrupt":
        message = message.with_mac(bytes([message.mac[0] ^ 0x01]) + message.mac[1:])
    if "key_id" in options:
        message = ue.codec.decode(ue.codec.fast.replace(message, key_id=options["key_id"]), message.scheme)
        message = ue.security.seal(message, ue.session.keys, "uplink")
    raw = bytes(message)
    _sent(ctx, args, what, raw)
    ue.send(raw)


def _protected(ctx: Context, ue: Any, what: str, options: dict[str, Any], sent: dict[str, bytes]) -> Any:
    counter = options.get("counter")
    if counter == "replay":
        previous = sent.get(what)
        if previous is None:
            raise Inconclusive(f"the UE sent no {what} yet to replay")
        return ue.codec.decode(previous, ue.session.scheme)
    counter = int(counter) if counter is not None else None
    if what == "user_data":
        return ue.user_data(str(options.get("data", "conformance")).encode(), counter=counter)
    if what == "unknown_command":
        code = next(c for c in range(0x7F, 0, -1) if c not in ue.layout.command_names())
        return ue.protected(code, [], counter=counter)  # type: ignore[arg-type]
    tlvs: list[tuple[str, bytes]] = []
    if what == "session_start_confirmation":
        res = options.get("res", "right")
        if res == "right":
            tlvs = [("res", ue.session.res)]
        elif res == "wrong":
            tlvs = [("res", bytes(b ^ 0xFF for b in ue.session.res))]
    elif what == "manage_keys_response":
        tlvs = [("res", ue.session.res)]
    return ue.protected(what, tlvs, counter=counter)


def _mutated_request(ctx: Context, ue: Any, options: dict[str, Any]) -> bytes:
    raw = bytes(
        ue.build_session_request(**_request_options(ctx, ue, {k: v for k, v in options.items() if k != "mutate"}))
    )
    kind = options["mutate"]
    header = ue.layout.header_bytes("cp", ue.layout.default_scheme) + 1
    if kind == "truncate":
        return raw[: header + 5]  # inside the first TLV
    if kind == "overlong_tlv":
        return raw[: header + 1] + bytes([raw[header + 1] + 40]) + raw[header + 2 :]
    if kind == "unknown_tag":
        return raw + bytes([0xEE, 0x02, 0x00, 0x00])
    if kind == "version_bits":
        if not ue.layout.field_bits.get("version"):
            raise NotRun("the binding has no version field (emsdp.header.version_bits = 0)")
        return bytes([raw[0] ^ 0x80]) + raw[1:]
    raise Inconclusive(f"unknown mutation {kind!r}")


ABSENCES = ("silence", "silence_or_reject")  # what a step may wait for instead of a message (no check then)
NO_CHECK_ON_ABSENCE = when(ABSENCES, {"properties": {"check": not_here("silence and silence_or_reject take no check")}})
EXPECT_SCHEMA = step(
    binding_names("emsdp.commands", plus=("user_data", *ABSENCES), title="message"),
    within=True,
    as_=True,
    check=checks(MATCHER_SCHEMAS),
    rules=[NO_CHECK_ON_ABSENCE],
)


@verb("expect", schema=EXPECT_SCHEMA)
def expect(ctx: Context, args: dict[str, Any]) -> None:
    """Wait for the next message and check it. The value: a command name, user_data, silence, or
    silence_or_reject (no service: silence for the whole window, or a Message Reject of any cause; whether the
    SUT rejects or discards is policy, that it does not act on the message is not). within: how long (default
    the PIXIT's reply timeout). check: matchers on what arrived (see the matcher list).
    Network duplicates and stale replies are set aside (noted in the trace), never taken as the answer. An
    answer that comes after `within` (up to a quarter more, at most 0.5 s) makes the step inconclusive, "late
    by N ms"; so does a datagram that comes after a silence window before the next step acts."""
    ue = _ue(ctx, args)
    noted = len(ue.notes)
    try:
        _expect(ctx, ue, args, noted)
    except NotJudgeable as exc:
        raise NotJudged(str(exc)) from None
    except CheckFailed as exc:
        spoiled = spoiled_by_network(ctx, ue, exc, _window(ue, args))
        if spoiled:  # the network's duplicate took the session away: what the step saw proves nothing
            raise NotJudged(f"not judged: {spoiled}; the step then saw: {exc}") from None
        raise


def _window(ue: Any, args: dict[str, Any]) -> float:
    """How long the step waits: a silence window as the UE's timing cuts it (a measured path, or the PIXIT's
    silence_window); for an answer, the step's `within` as written (it may wait for a timer of the SUT's), else
    the UE's reply timeout."""
    given = None if args.get("within") is None else _seconds(args["within"], 0.0)
    if args["_value"] in ("silence", "silence_or_reject"):
        return ue.timing.silence(given)
    return ue.timeout if given is None else given


def _expect(ctx: Context, ue: Any, args: dict[str, Any], noted: int) -> None:
    what = args["_value"]
    within = _window(ue, args)
    if what == "silence":
        packet = ue.expect_silence(within, f"the {within * 1000:.0f} ms silence window")
        if packet is not None:
            raise CheckFailed("silence", f"nothing within {within}s", ue.codec.describe(packet))
        return
    if what == "silence_or_reject":
        _no_service(ue, within)
        return
    packet = ue.receive(timeout=within, grace=late_grace(within), expecting="up" if what == "user_data" else what)
    if packet is None:
        raise NoAnswer(f"a {what}", f"within {within}s", silence_seen(ue, noted) + unanswered_protection(ue))
    got = (
        "user_data"
        if getattr(packet, "plane", None) == "up"
        else ue.layout.command_names().get(getattr(packet, "cmd", -1), "not EMSDP")
    )
    if got != what:
        raise CheckFailed(f"a {what}", what, {"received": got, "message": ue.codec.describe(packet)})
    ctx.last[args.get("as", "ue")] = packet
    if what in ("session_start", "manage_keys_request"):
        note_vector(ctx, ue, packet)
    run_checks(ctx, ue, packet, args.get("check") or {}, args.get("as", "ue"))
    if what == "session_start":
        ue.follow_answer()  # a duplicated Session Request: the next steps use the session the HSE kept


def _no_service(ue: Any, within: float) -> None:
    """Silence for `within` seconds, or a Message Reject (of any cause) first: never an answer that acts on the
    message (an echo, a Terminate Response, a Manage Keys Request, a Session Start...)."""
    packet = ue.expect_silence(within, f"the {within * 1000:.0f} ms window for silence or a Message Reject")
    if packet is None:
        return
    command = ue.layout.command_names().get(getattr(packet, "cmd", None))
    if getattr(packet, "plane", None) != "cp" or command != "message_reject":
        raise CheckFailed(
            "no service: silence or a Message Reject", f"nothing else within {within}s", ue.codec.describe(packet)
        )


@verb("answer_manage_keys", schema=step(NOTHING, as_=True))
def answer_manage_keys(ctx: Context, args: dict[str, Any]) -> None:
    """Answer the last Manage Keys Request the way the USIM decides (RES, or AUTS on an SQN failure); the keys
    of the next session are saved for key checks (as `next_keys`), the answer for `counter: replay`. After an
    AUTS the HSE's new challenge is awaited (reply timeout) and kept as the last Manage Keys Request, unanswered."""
    ue = _ue(ctx, args)
    request = ctx.last.get(args.get("as", "ue"))
    if request is None:
        raise Inconclusive("no Manage Keys Request received")
    try:
        check, keys = ue.answer_manage_keys(request)
    except PortUnreachable:
        raise
    except ProtocolError as exc:
        raise CheckFailed("a Manage Keys Request the UE can accept", "verifiable MAC and AUTN", str(exc)) from None
    # the answer as it left (the same TLV, counter and MAC), for `send: manage_keys_response` `counter: replay`
    resync = check.outcome is AutnOutcome.SYNCH_FAILURE
    answer = ("auts", check.auts) if resync else ("res", check.res)
    sent = ue.protected("manage_keys_response", [answer], counter=ue.session.cp_counter)
    _sent(ctx, args, "manage_keys_response", bytes(sent))
    ctx.saved["next_keys"] = keys
    ctx.saved["next_key_id"] = key_id_for(ctx, tlv_values(request)["rand"], keys)
    if resync:  # the HSE resynchronises and challenges again (TS 33.102 6.3.5): that request answers the AUTS, and
        # is taken here (unanswered) rather than landing in a later step's silence window
        follow = ue.receive(expecting="manage_keys_request")
        if follow is not None and ue.layout.command_names().get(getattr(follow, "cmd", -1)) == "manage_keys_request":
            ctx.last[args.get("as", "ue")] = follow


@verb("wait", schema=step({"anyOf": [{"type": "null"}, DURATION], "description": DURATION["description"]}))
def wait(ctx: Context, args: dict[str, Any]) -> None:
    """Let time pass (e.g. for an idle timer of the SUT)."""
    time.sleep(_seconds(args["_value"], 1.0))


@verb("probe", schema=step(names("session", title="probe")))
def probe(ctx: Context, args: dict[str, Any]) -> None:
    """Proof of life after a procedure that ends the session: a fresh UE (its own socket) completes a BEST
    session. The value says what is probed (session)."""
    expectation = ("the SUT still serves a valid Session Request", "a session")
    others_judged(ctx)
    try:
        _set_up(ctx, {"as": f"probe{len(ctx.ues)}"})
    except PortUnreachable:
        raise
    except NotJudgeable as exc:
        raise NotJudged(str(exc)) from None
    except NoReply as exc:
        raise NoAnswer(*expectation, str(exc)) from None
    except ProtocolError as exc:
        raise CheckFailed(*expectation, str(exc)) from None
    others_judged(ctx)  # a late answer to what the case expected silence for may have come meanwhile
