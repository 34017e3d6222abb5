"""Step verbs: what a case may do. Each is a small function (context, arguments); the docstring is what
`best-conformance explain` shows. `with:` gives options, `as:` names the UE (default "ue")."""

from __future__ import annotations

import functools
import queue
import time
from collections.abc import Callable
from typing import Any

import httpx

from conformance.crypto.aka import AutnOutcome
from conformance.emsdp.values import tlv_values
from conformance.engine.context import Context, NotApplicable, NotRun
from conformance.engine.hygiene import others_judged, silence_seen, spoiled_by_network
from conformance.engine.matchers import MATCHER_SCHEMAS, key_check, key_id_for, provisioned_new, run_checks
from conformance.engine.results import CheckFailed, Inconclusive, NoAnswer, NotJudged, SutAbsent, Unanswered
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
from conformance.engine.tls_outcomes import control_connection, refusal, tls_only, transport_failure
from conformance.keyserver.client import KeyServerError
from conformance.roles.datagrams import late_grace
from conformance.roles.errors import NoReply, NotJudgeable, PortUnreachable, ProtocolError

VERBS: dict[str, Callable[[Context, dict[str, Any]], None]] = {}
VERB_SCHEMAS: dict[str, Schema] = {}  # name -> JSON Schema of what the verb's steps take (engine.schema)


def verb(
    name: str, schema: Schema | None = None
) -> Callable[[Callable[[Context, dict[str, Any]], None]], Callable[[Context, dict[str, Any]], None]]:
    """Register a step verb under `name`, with the JSON Schema of what its steps take: the linter checks every
    step against it (engine.schema)."""

    def register(fn: Callable[[Context, dict[str, Any]], None]) -> Callable[[Context, dict[str, Any]], None]:
        @functools.wraps(fn)
        def step(ctx: Context, args: dict[str, Any]) -> None:
            try:
                fn(ctx, args)
            except PortUnreachable as exc:  # whatever the step did, the SUT is not there: nothing to judge
                raise SutAbsent(str(exc)) from None

        VERBS[name] = step
        if schema is not None:
            VERB_SCHEMAS[name] = schema
        return fn

    return register


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
        start = ue.expect("session_start", timeout=ctx.timeout)
        values = tlv_values(start)
        if "rand" not in values or "autn" not in values:
            raise ProtocolError(f"the Session Start carries no {'RAND' if 'rand' not in values else 'AUTN'}")
        check = ue.usim.authenticate(values["rand"], values["autn"], require_separation_bit=False)
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
    from conformance.crypto.suci import PROFILE_A, PROFILE_B, Suci, build_suci, conceal, encode_msin

    if profile_name not in ctx.profile.pics.suci_profiles:
        raise NotApplicable(f"the SUT does not claim SUCI profile {profile_name}")
    key = next((k for k in ctx.profile.pixit.home_network_keys if k.profile == profile_name), None)
    if key is None:
        raise NotRun(f"no home network public key for profile {profile_name} in the PIXIT (pixit.home_network_keys)")
    imsi = ue.credentials.imsi
    mnc_digits = 2  # the test subscribers' MCC/MNC split: 3 + 2 (PIXIT could say otherwise)
    mcc, mnc, msin = imsi[:3], imsi[3 : 3 + mnc_digits], imsi[3 + mnc_digits :]
    output = conceal(encode_msin(msin), key.public_key, profile_name)
    scheme = PROFILE_A if profile_name == "A" else PROFILE_B
    suci = Suci(0, mcc, mnc, "0", scheme, key.id, output)
    fmt = ctx.binding["suci.format"]
    value = build_suci(suci, fmt)
    return value if isinstance(value, bytes) else value.encode()


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
    start = ue.expect("session_start", timeout=ctx.timeout, grace=late_grace(ctx.timeout))
    check = ue.accept_session_start(start)
    if check.outcome is not AutnOutcome.OK:
        raise ProtocolError(f"the USIM refused AUTN: {check.outcome.value} ({check.reason})")
    ue.follow_answer()  # a duplicated Session Request: the session the HSE kept
    if options.get("confirm", True):
        ue.confirm()


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
    unknown_command, raw. with: res (right|wrong|none), auts (true), data, mac (corrupt), counter (replay|N),
    key_id, hex (for raw), mutate (truncate|overlong_tlv|unknown_tag|version_bits, on a Session Request)."""
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
        ue.send_auts(auts, ctx.saved[f"{args.get('as', 'ue')}.session_id"])
        return
    if ue.session is None:
        raise Inconclusive(f"cannot send {what}: no BEST session")
    message = _protected(ctx, ue, what, options)
    if options.get("mac") == "corrupt":
        message.mac = bytes([message.mac[0] ^ 0x01]) + message.mac[1:]
    if "key_id" in options:
        message.key_id = options["key_id"]
        ue.security.seal(message, ue.session.keys, "uplink")
    raw = bytes(message)
    ctx.saved[f"{args.get('as', 'ue')}.last_sent"] = raw
    ue.send(raw)


def _protected(ctx: Context, ue: Any, what: str, options: dict[str, Any]) -> Any:
    counter = options.get("counter")
    if counter == "replay":
        previous = ctx.saved.get("ue.last_sent")
        if previous is None:
            raise Inconclusive("nothing sent yet to replay")
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


EXPECT_SCHEMA = step(
    binding_names("emsdp.commands", plus=("user_data", "silence"), title="message"),
    within=True,
    as_=True,
    check=checks(MATCHER_SCHEMAS),
    rules=[when(["silence"], {"properties": {"check": not_here("silence takes no check")}})],
)


@verb("expect", schema=EXPECT_SCHEMA)
def expect(ctx: Context, args: dict[str, Any]) -> None:
    """Wait for the next message and check it. The value: a command name, user_data, or silence. within: how
    long (default the PIXIT's reply timeout). check: matchers on what arrived (see the matcher list).
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
        spoiled = spoiled_by_network(ctx, ue, exc, _seconds(args.get("within"), ctx.timeout))
        if spoiled:  # the network's duplicate took the session away: what the step saw proves nothing
            raise NotJudged(f"not judged: {spoiled}; the step then saw: {exc}") from None
        raise


def _expect(ctx: Context, ue: Any, args: dict[str, Any], noted: int) -> None:
    what = args["_value"]
    within = _seconds(args.get("within"), ctx.timeout)
    if what == "silence":
        packet = ue.expect_silence(within, f"the {within * 1000:.0f} ms silence window")
        if packet is not None:
            raise CheckFailed("silence", f"nothing within {within}s", ue.codec.describe(packet))
        return
    packet = ue.receive(timeout=within, grace=late_grace(within), expecting="up" if what == "user_data" else what)
    if packet is None:
        raise NoAnswer(f"a {what}", f"within {within}s", silence_seen(ue, noted))
    got = (
        "user_data"
        if getattr(packet, "plane", None) == "up"
        else ue.layout.command_names().get(getattr(packet, "cmd", -1), "not EMSDP")
    )
    if got != what:
        raise CheckFailed(f"a {what}", what, {"received": got, "message": ue.codec.describe(packet)})
    ctx.last[args.get("as", "ue")] = packet
    run_checks(ctx, ue, packet, args.get("check") or {}, args.get("as", "ue"))
    if what == "session_start":
        ue.follow_answer()  # a duplicated Session Request: the next steps use the session the HSE kept


@verb("answer_manage_keys", schema=step(NOTHING, as_=True))
def answer_manage_keys(ctx: Context, args: dict[str, Any]) -> None:
    """Answer the last Manage Keys Request the way the USIM decides (RES, or AUTS on an SQN failure); the keys
    of the next session are saved for key checks (as `next_keys`)."""
    ue = _ue(ctx, args)
    request = ctx.last.get(args.get("as", "ue"))
    if request is None:
        raise Inconclusive("no Manage Keys Request received")
    try:
        _, keys = ue.answer_manage_keys(request)
    except PortUnreachable:
        raise
    except ProtocolError as exc:
        raise CheckFailed("a Manage Keys Request the UE can accept", "verifiable MAC and AUTN", str(exc)) from None
    ctx.saved["next_keys"] = keys
    ctx.saved["next_key_id"] = key_id_for(ctx, tlv_values(request)["rand"], keys)


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


EAS_ACTIONS = (
    "register",
    "subscribe",
    "fetch_key",
    "expect_push",
    "deregister",
    "fetch_after_deregister",
    "post_raw",
    "old_tls",
    "tls_only",
)
RAW_BODIES = {  # post_raw body -> the rest.status list it is answered with by default
    "malformed": "bad_request",
    "schema_invalid": "bad_request",
    "entity_bomb": "bad_request",
    "oversized": "too_large",
    "oversized_chunked": "too_large",
    "wrong_content_type": "unsupported_media_type",
}


KEY_FORMS: Schema = {  # the key a fetch asks for (key_check)
    "anyOf": [
        names("session", "next", "old", "bogus", "provisioned_new", title="key"),
        mapping(
            {
                "provisioned": {"type": "integer"},
                "expect": {"const": "unknown"},
                "key_id": {
                    "anyOf": [{"const": "flipped"}, {"type": "string", "pattern": "^([0-9a-fA-F]{2})+$"}],
                    "description": "flipped or hexadecimal octets",
                },
            },
            required=["provisioned"],
        ),
    ],
    "description": "session, next, old, bogus, provisioned_new or "
    "{provisioned: N, expect: unknown, key_id: flipped|<hex>}",
}
_FETCHES = ("fetch_key", "fetch_after_deregister")
_NOT_REFUSED: Schema = {"not": {"const": "refused"}, "description": "refused: only with register"}
_TLS_ACTIONS = ("old_tls", "tls_only")


def _eas_option(action: str, **properties: Schema) -> Schema:
    """A rule: with this action, these options take only these values."""
    return when([action], {"properties": {"with": {"properties": properties}}})


EAS_SCHEMA = step(
    names(*EAS_ACTIONS, title="action"),
    with_=options(
        identity=STRING,
        certificate={"type": "string", "description": "own, none, foreign or another identity"},
        session_of={"type": "string", "description": "another identity, or unissued"},
        key=KEY_FORMS,
        ue_id={"type": ["string", "integer"]},
        distinct=TRUE,
        status=binding_names("rest.status", plus=("refused",), title="status"),
        body=STRING,
        version=STRING,
    ),
    rules=[
        only_with(["register", "post_raw"], "body"),
        _eas_option("register", body=names("dtd_entity", title="register body")),
        _eas_option("post_raw", body=names(*RAW_BODIES, title="post_raw body")),
        needs(["post_raw"], "body"),
        only_with(_TLS_ACTIONS, "version"),
        _eas_option("old_tls", version=names("TLSv1", "TLSv1.1", title="old TLS version")),
        _eas_option("tls_only", version=names("TLSv1.2", "TLSv1.3", title="TLS version")),
        not_with(_TLS_ACTIONS, "certificate"),
        not_with([*_TLS_ACTIONS, "expect_push"], "status"),
        when(["register"], {}, otherwise={"properties": {"with": {"properties": {"status": _NOT_REFUSED}}}}),
        only_with([*_FETCHES, "expect_push"], "key"),
        _eas_option("expect_push", key=names("provisioned_new", title="pushed key")),
        only_with(_FETCHES, "ue_id", "distinct"),
        only_with(["subscribe", *_FETCHES, "deregister"], "session_of"),
    ],
)


@verb("eas", schema=EAS_SCHEMA)
def eas(ctx: Context, args: dict[str, Any]) -> None:
    """A key-server client action: the EAS towards an HSE, the EMSE towards an EMKS (identity default
    pixit.eas_id, or pixit.emse_id when the SUT is an EMKS). The value: register, subscribe, fetch_key,
    expect_push, deregister, fetch_after_deregister, post_raw (a bad registration body, then the answer's
    status), old_tls (a TLS handshake capped at `version`, TLSv1 or TLSv1.1, must be refused), tls_only (a
    handshake offering only `version`, TLSv1.2 or TLSv1.3, must complete).
    with: identity, certificate (own|none|foreign|<other identity>), session_of (use the session id this other
    identity registered, or `unissued`), key (session | next | old | bogus from the UE's session; or, towards an
    EMKS, provisioned_new (the run the provision trigger made) or {provisioned: N, expect: unknown,
    key_id: flipped|<hex>}: see the key_check matcher), ue_id, distinct,
    status (expected HTTP status list name from rest.status, for negative cases), body (register: dtd_entity,
    the client id comes from an internal DTD entity, which a key server must refuse rather than expand;
    post_raw: malformed | schema_invalid | entity_bomb | oversized | oversized_chunked | wrong_content_type)."""
    options = dict(args.get("with") or {})
    action = args["_value"]
    identity = options.get("identity") or ctx.client_id
    if action in ("old_tls", "tls_only"):
        default = "TLSv1.1" if action == "old_tls" else "TLSv1.2"
        tls_only(ctx, identity, str(options.get("version", default)), accepted=action == "tls_only")
        return
    if options.get("status") == "refused":
        _refused(ctx, identity, options)
        return
    role = ctx.eas(options.get("identity"), certificate=options.get("certificate", "own"))
    try:
        if action == "register":
            expected = options.get("status", "registered")
            response = role.client.request(
                "POST",
                role.client.path("register"),
                content=_registration_body(ctx, role, identity, options.get("body")),
                headers={"content-type": ctx.binding["rest.content_type"]},
            )
            allowed = ctx.binding[f"rest.status.{expected}"]
            if response.status_code not in allowed:
                raise CheckFailed(f"registration answered {expected}", allowed, response.status_code)
            if expected == "registered":
                session = role.client.xml.parse_registration_answer(response.content)
                ctx.saved["eas.session"] = ctx.saved[f"eas.session.{identity}"] = session
        elif action == "subscribe":
            session = _eas_session(ctx, identity, options)
            if "status" not in options:
                role.client.subscribe(session, role.push_receiver())
                return
            body = role.client.xml.subscription(role.push_receiver())
            response = role.client.request("POST", role.client.path("subscription", session_id=session), content=body)
            allowed = ctx.binding[f"rest.status.{options['status']}"]
            if response.status_code not in allowed:
                raise CheckFailed(f"the subscription answered {options['status']}", allowed, response.status_code)
        elif action in ("fetch_key", "fetch_after_deregister"):
            key_check(
                ctx,
                role,
                options,
                deleted=action == "fetch_after_deregister",
                session_id=_eas_session(ctx, identity, options),
                identity=identity,
            )
        elif action == "expect_push":
            _expect_push(ctx, role, identity, options)
        elif action == "deregister":
            session = _eas_session(ctx, identity, options)
            response = role.client.request("DELETE", role.client.path("registration", session_id=session))
            allowed = ctx.binding[f"rest.status.{options.get('status', 'deregistered')}"]
            if response.status_code not in allowed:
                raise CheckFailed(
                    f"deregistration answered {options.get('status', 'deregistered')}", allowed, response.status_code
                )
        elif action == "post_raw":
            _post_raw(ctx, role, identity, options)
        else:
            raise Inconclusive(f"unknown EAS action {action!r}")
    except KeyServerError as exc:
        raise CheckFailed(f"EAS {action}", "a successful answer", f"HTTP {exc.status}: {exc.body!r}") from None
    except (httpx.TransportError, OSError) as exc:
        raise transport_failure(ctx, exc, f"EAS {action}") from None


def _refused(ctx: Context, identity: str, options: dict[str, Any]) -> None:
    """A registration with the certificate the case names (none, foreign, another identity's) must be refused
    at the TLS layer: a TLS alert or a handshake the server broke off, judged after a control connection with
    valid credentials succeeded. An HTTP answer of any status fails; nothing listening is no refusal."""
    control_connection(ctx)
    role = ctx.eas(options.get("identity"), certificate=options.get("certificate", "own"))
    try:
        response = role.client.request(
            "POST", role.client.path("register"), content=role.client.xml.registration(identity)
        )
    except (httpx.TransportError, OSError) as exc:
        refusal(ctx, exc)  # raises when it is no refusal (nothing listens, no answer)
        return
    raise CheckFailed("a refused TLS connection", "a TLS alert or an aborted handshake", f"HTTP {response.status_code}")


def _expect_push(ctx: Context, role: Any, identity: str, options: dict[str, Any]) -> None:
    """The next pushed key, sent over mutual TLS by a certified key server: towards an HSE, the UE's
    KInt_EAS_PSK; towards an EMKS (key: provisioned_new), the e2m_key of the AKA run the provision trigger
    just made, for this EMSE, under its UE identity and key identifier."""
    try:
        doc, pusher = role.pushed.get(timeout=ctx.timeout)
    except queue.Empty:
        raise NoAnswer("a pushed key", "a notification", f"none within {ctx.timeout}s") from None
    if pusher is None:
        raise CheckFailed("a push over mutual TLS", "the key server's client certificate", "no certificate")
    if options.get("key") == "provisioned_new":
        ue_id, key_id, key = provisioned_new(ctx, identity)
        expected = {"ue_id": ue_id, "key_id": key_id.hex(), "key": key.hex()}
        pushed = {"ue_id": doc.ue_id, "key_id": doc.key_id.hex(), "key": doc.key.hex()}
        if pushed != expected:
            raise CheckFailed("the pushed key is the new run's e2m_key", expected, pushed)
        return
    ue = ctx.ue()
    expected_key = ue.session.keys["kint_eas_psk"] if ue.session else None
    left = {s.keys["kint_eas_psk"] for s in ue.superseded.values()} - {expected_key}
    while doc.key in left:  # the key of a session a network duplicate of the Session Request superseded
        try:
            doc, pusher = role.pushed.get(timeout=ctx.timeout)
        except queue.Empty:
            raise NoAnswer("a pushed key", "a notification", f"none within {ctx.timeout}s") from None
    if doc.key != expected_key:
        raise CheckFailed("the pushed key is the UE's KInt_EAS_PSK", expected_key, doc.key)


def _registration_body(ctx: Context, role: Any, identity: str, body: str | None) -> bytes:
    """The registration document; with body dtd_entity, the same document whose client id is an internal
    DTD entity reference (a parser that expands entities registers it, one refusing DTDs answers 400)."""
    document = role.client.xml.registration(identity)
    if body is None:
        return document
    if body != "dtd_entity":
        raise Inconclusive(f"unknown registration body {body!r}")
    declaration, _, rest = document.decode("utf-8").partition("\n")
    doctype = f'<!DOCTYPE {ctx.binding["rest.xml.registration"]} [<!ENTITY id "{identity}">]>'
    return f"{declaration}\n{doctype}\n{rest.replace(f'>{identity}<', '>&id;<')}".encode()


def _raw_body(ctx: Context, role: Any, identity: str, kind: str) -> bytes:
    """A registration body that must be refused (post_raw), each built from the valid document."""
    document = role.client.xml.registration(identity)
    names = role.client.xml.names
    if kind == "malformed":  # cut inside the closing tag
        return document[:-4]
    if kind == "schema_invalid":  # well-formed, right root and namespace, but no client id
        return f'<{names.registration} xmlns="{names.namespace}"/>'.encode()
    if kind == "entity_bomb":  # a small billion laughs: 10^4 expansions if a parser allowed it
        laughs = "".join(
            f'<!ENTITY {name} "{("&" + previous + ";") * 10}">' for previous, name in zip("abcd", "bcde", strict=True)
        )
        return (
            f'<?xml version="1.0"?><!DOCTYPE {names.registration} [<!ENTITY a "lol">{laughs}]>'
            f'<{names.registration} xmlns="{names.namespace}"><{names.client_id}>&e;</{names.client_id}>'
            f"</{names.registration}>"
        ).encode()
    if kind == "oversized":  # the valid document, padded with whitespace past the limit (declared length)
        return document + b" " * (ctx.binding["rest.max_body_bytes"] + 1 - len(document))
    raise Inconclusive(f"unknown raw body {kind!r}; known: {', '.join(RAW_BODIES)}")


def _post_raw(ctx: Context, role: Any, identity: str, options: dict[str, Any]) -> None:
    """POST a bad registration body; the answer must be in rest.status.<status> (default: per body)."""
    kind = str(options.get("body"))
    if kind not in RAW_BODIES:
        raise Inconclusive(f"unknown raw body {kind!r}; known: {', '.join(RAW_BODIES)}")
    status = options.get("status", RAW_BODIES[kind])
    content_type = "text/plain" if kind == "wrong_content_type" else ctx.binding["rest.content_type"]
    path = role.client.path("register")
    try:
        if kind == "oversized_chunked":  # no Content-Length: the server must count as it reads
            limit = ctx.binding["rest.max_body_bytes"]
            chunks = (b" " * 1024 for _ in range(limit // 1024 + 2))
            response = role.client.http.post(path, content=chunks, headers={"content-type": content_type})
        else:
            body = role.client.xml.registration(identity) if kind == "wrong_content_type" else None
            body = body or _raw_body(ctx, role, identity, kind)
            response = role.client.request("POST", path, content=body, headers={"content-type": content_type})
    except Exception as exc:  # e.g. the connection closed mid-body: no answer at all
        raise CheckFailed(f"a {kind} body answered {status}", ctx.binding[f"rest.status.{status}"], repr(exc)) from None
    allowed = ctx.binding[f"rest.status.{status}"]
    if response.status_code not in allowed:
        raise CheckFailed(f"a {kind} body answered {status}", allowed, f"HTTP {response.status_code}")


def _eas_session(ctx: Context, identity: str | None = None, options: dict[str, Any] | None = None) -> str:
    """The session id to use: the one `session_of` registered if given (`unissued`: one nobody registered),
    else the identity's own, else the last one registered."""
    owner = (options or {}).get("session_of")
    if owner == "unissued":  # a well-formed session id no registration produced
        return "unissued-" + "0" * 14
    session = ctx.saved.get(f"eas.session.{owner or identity}")
    if session is None and owner is None:
        session = ctx.saved.get("eas.session")
    if session is None:
        raise Inconclusive(f"{owner or 'the EAS'} is not registered")
    return session


from conformance.engine import emse_verbs  # noqa: E402,F401  (registers the verbs for an EMSE under test)
