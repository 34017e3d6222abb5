"""Verbs for an EMSE under test (TR 33.863 Sol. #10, seed 002): the harness is its EMKS (`emks`, which
records what the SUT asked) and the UE opening DTLS-PSK sessions to it (`dtls`); `trigger` makes the SUT
register or deregister by the PIXIT's commands.

Checks on what the SUT sent to the harness's EMKS are named under `check:` (see EXCHANGE_CHECKS).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from conformance.capture.tap import TappedUdpSocket
from conformance.engine.context import Context, NotRun
from conformance.engine.expected_keys import e2m_keys, provisioned_run
from conformance.engine.results import CheckFailed, Inconclusive, NoAnswer, SutAbsent
from conformance.engine.schema import STRING, TRUE, Schema, checks, names, not_here, only_with, options, step, when
from conformance.engine.verbs.registry import verb
from conformance.keyserver.client import minimum_tls_version
from conformance.keyserver.xml import KeyServerXml, KeyServerXmlError
from conformance.roles.emks import Exchange, HarnessEmks

EMKS_ACTIONS = (
    "registration",
    "key_request",
    "no_key_request",
    "deregistration",
    "no_deleted_session",
    "impersonate",
    "tls_only",
    "restore",
)
DTLS_EXPECT = ("established", "refused", "any")
DTLS_ACTIONS = ("handshake", "offer_dtls_1_0")
# The registration is on record as its answer leaves the harness; the SUT still has to read that answer before
# it holds the session. A triggered registration gets this long before the case goes on.
SETTLE = 0.25


def _emks(ctx: Context) -> HarnessEmks:
    if ctx.peers is None or ctx.peers.emks is None:
        raise Inconclusive("the harness's EMKS is not running (the run did not start its peers)")
    return ctx.peers.emks


def _tls_ok(ctx: Context, version: str | None) -> bool:
    import ssl

    return version is not None and ssl.TLSVersion[version.replace(".", "_")] >= minimum_tls_version(ctx.binding)


def _check_exchange(ctx: Context, exchange: Exchange, checks: dict[str, Any]) -> None:
    """Each named check on one exchange the SUT made; the evidence is the exchange itself."""
    emse_id = ctx.profile.pixit.emse_id
    seen = exchange.to_dict()
    for name, wanted in checks.items():
        if name not in EXCHANGE_CHECKS:
            raise Inconclusive(f"unknown key-server check {name!r}; known: {', '.join(EXCHANGE_CHECKS)}")
        if wanted is not True:  # each check takes `true` only; the linter refuses any other value
            raise ValueError(f"key-server check {name} takes only true, got {wanted!r}")
        ok, expectation, expected = EXCHANGE_CHECKS[name](ctx, exchange, wanted, emse_id)
        if not ok:
            raise CheckFailed(expectation, expected, seen)


def _status_in(name: str):
    def check(ctx: Context, e: Exchange, _wanted: Any, _emse_id: str) -> tuple[bool, str, Any]:
        allowed = ctx.binding[f"rest.status.{name}"]
        return e.status in allowed, f"the harness's EMKS accepted the request (rest.status.{name})", allowed

    return check


def _client_id(ctx: Context, e: Exchange, _wanted: Any, emse_id: str) -> tuple[bool, str, Any]:
    try:
        claimed = KeyServerXml(ctx.binding).parse_registration(e.body)
    except KeyServerXmlError as exc:
        return False, f"a schema-valid registration document ({exc.reason})", emse_id
    return claimed == emse_id, "the registration carries the EMSE_Id (pixit.emse_id)", emse_id


def _certificate(ctx: Context, e: Exchange, _wanted: Any, emse_id: str) -> tuple[bool, str, Any]:
    return e.identity == emse_id, "a client certificate whose identity is the EMSE_Id", emse_id


def _content_type(ctx: Context, e: Exchange, _wanted: Any, _emse_id: str) -> tuple[bool, str, Any]:
    media = e.content_type.split(";")[0].strip().lower()
    return (
        media == ctx.binding["rest.content_type"].lower(),
        "the binding's content type",
        ctx.binding["rest.content_type"],
    )


def _tls(ctx: Context, e: Exchange, _wanted: Any, _emse_id: str) -> tuple[bool, str, Any]:
    return _tls_ok(ctx, e.tls_version), "TLS at or above tls.min_version", f"≥ {ctx.binding['tls.min_version']}"


def _live_session(ctx: Context, e: Exchange, _wanted: Any, emse_id: str) -> tuple[bool, str, Any]:
    live = _emks(ctx).live_session(emse_id)
    return e.params.get("session_id") == live, "the session id the EMKS issued to this EMSE", live


def _ue_and_key(ctx: Context, e: Exchange, _wanted: Any, _emse_id: str) -> tuple[bool, str, Any]:
    sent = ctx.saved.get("dtls.identity")
    if sent is None:
        raise Inconclusive("no DTLS handshake named a UE identity and key id in this case")
    asked = (e.params.get("ue_id"), e.params.get("key_id", "").lower())
    expected = (sent[0], sent[1].hex())
    return asked == expected, "the UE identity and key identifier of the PSK identity", expected


def _registered_session(ctx: Context, e: Exchange, _wanted: Any, _emse_id: str) -> tuple[bool, str, Any]:
    session = ctx.saved.get("emks.session")
    return e.params.get("session_id") == session, "the session id of the EMSE's registration", session


EXCHANGE_CHECKS = {
    "created": _status_in("registered"),
    "delivered": _status_in("key_delivered"),
    "deregistered": _status_in("deregistered"),
    "client_id": _client_id,
    "certificate": _certificate,
    "content_type": _content_type,
    "tls": _tls,
    "live_session": _live_session,
    "ue_and_key": _ue_and_key,
    "registered_session": _registered_session,
}


REGISTER_TRIGGERED = "trigger.register"  # when a `trigger: register` step fired, for the registration it awaits


def ensure_registered(ctx: Context) -> Exchange | None:
    """The newest registration POST of the run; with no live registration, the register trigger first and a
    wait of up to pixit.registration_timeout. None if no registration arrived."""
    emks = _emks(ctx)
    emse_id = ctx.profile.pixit.emse_id
    posts = emks.log.since(0, "register")
    triggered = ctx.saved.pop(REGISTER_TRIGGERED, None)  # a `trigger: register` step of this case fired it
    if triggered is None:
        if emks.live_session(emse_id) is not None and posts:
            return posts[-1]
        triggered = time.time()
        if "register" in ctx.peers.triggers:  # a trigger may act later than it returns: fire it once, then wait
            ctx.peers.triggers["register"]()
    waited = emks.log.wait_for(triggered, "register", ctx.profile.pixit.registration_timeout)
    if waited is not None:
        time.sleep(SETTLE)
    return waited or (posts[-1] if posts else None)


_CHECKED = ("registration", "key_request", "deregistration")  # the actions whose exchanges `check:` applies to
EMKS_SCHEMA = step(
    names(*EMKS_ACTIONS, title="action"),
    with_=options(version=names("TLSv1.2", "TLSv1.3", title="TLS version")),
    check=checks({name: TRUE for name in EXCHANGE_CHECKS}),
    rules=[
        only_with(["tls_only"], "version"),
        when(_CHECKED, {}, otherwise={"properties": {"check": not_here(f"taken only with {' or '.join(_CHECKED)}")}}),
    ],
)


@verb("emks", schema=EMKS_SCHEMA)
def emks(ctx: Context, args: dict[str, Any]) -> None:
    """The harness's EMKS, towards an EMSE under test. The value: registration (the SUT's newest registration,
    made on its own or by the register trigger), key_request (every key request the SUT made in this case; at
    least one), no_key_request (none in this case), deregistration (a DELETE in this case, within
    pixit.registration_timeout), no_deleted_session (no key request since this case's DELETE used the deleted
    session id), impersonate (from now to the end of the case, a server certificate from another CA), tls_only
    (from now to the end of the case, only TLS `version`: TLSv1.2 or TLSv1.3), restore (its own certificate
    and TLS versions again, before the case ends: for a proof of life after impersonate).
    check: names from EXCHANGE_CHECKS, applied to each of those requests."""
    action = args["_value"]
    checks = args.get("check") or {}
    emks_role = _emks(ctx)
    if action == "registration":
        exchange = ensure_registered(ctx)
        if exchange is None:
            raise NoAnswer("a registration POST", f"within {ctx.profile.pixit.registration_timeout}s", "none")
        ctx.saved["emks.session"] = emks_role.live_session(ctx.profile.pixit.emse_id)
        _check_exchange(ctx, exchange, checks)
        if ctx.saved["emks.session"] is None and not checks:  # a preamble: the case needs a registered EMSE
            raise Inconclusive(f"the EMSE holds no registration: its newest POST was answered {exchange.status}")
    elif action in ("key_request", "no_key_request"):
        requests = emks_role.log.since(ctx.started, "ue_key")
        if action == "no_key_request":
            if requests:
                raise CheckFailed("no key request", "none", [e.to_dict() for e in requests])
            return
        if not requests:
            raise NoAnswer("a key request (GET by UE identity and key identifier)", "at least one", "none")
        for exchange in requests:
            _check_exchange(ctx, exchange, checks)
    elif action == "deregistration":
        exchange = emks_role.log.wait_for(ctx.started, "registration", ctx.profile.pixit.registration_timeout)
        if exchange is None:
            raise NoAnswer("a DELETE of the registration", "within the registration timeout", "none")
        if exchange.method != "DELETE":
            raise CheckFailed("a DELETE of the registration", "DELETE", exchange.to_dict())
        _check_exchange(ctx, exchange, checks)
    elif action == "no_deleted_session":
        deleted = [e for e in emks_role.log.since(ctx.started, "registration") if e.method == "DELETE"]
        if not deleted:
            raise Inconclusive("no DELETE of the registration in this case")
        stale = [
            e
            for e in emks_role.log.since(deleted[0].time, "ue_key")
            if e.params.get("session_id") == deleted[0].params.get("session_id")
        ]
        if stale:
            raise CheckFailed("no key request under the deleted session", "none", [e.to_dict() for e in stale])
    elif action == "impersonate":
        emks_role.impersonate()
        ctx.cleanups.append(emks_role.restore)
    elif action == "tls_only":
        version = str((args.get("with") or {}).get("version", "TLSv1.2"))
        emks_role.offer_only(version)
        ctx.cleanups.append(emks_role.restore)
    elif action == "restore":
        emks_role.restore()
    else:
        raise Inconclusive(f"unknown emks action {action!r}; known: {', '.join(EMKS_ACTIONS)}")


UE_TRIGGERS = ("session", "send_data", "manage_keys", "terminate")  # what a UE under test does when told
TRIGGER_SCHEMA = step(
    names("register", "deregister", "provision", *UE_TRIGGERS, title="trigger"),
    with_=options(data=STRING),
    rules=[only_with(["send_data"], "data")],
)


@verb("trigger", schema=TRIGGER_SCHEMA)
def trigger(ctx: Context, args: dict[str, Any]) -> None:
    """Make the SUT act on its own initiative (pixit.triggers; not run without the one named):
    register or deregister (an EMSE); provision (an EMKS takes the keys of a new AKA run of the first PIXIT
    subscriber, with a fresh RAND the harness draws and remembers for the key checks that follow); a UE under
    test: session (it sends a Session Request to the harness's HSE), send_data (it sends uplink user data;
    with: data, the text, handed to the trigger in hex as {data}), manage_keys (it asks for new keys with a
    Manage Keys Request), terminate (it ends its session with a Terminate Request). What the UE sent before the
    trigger is never taken for its reaction."""
    name = args["_value"]
    if ctx.peers is None or name not in ctx.peers.triggers:
        raise NotRun(f"the PIXIT gives no '{name}' trigger (pixit.triggers.{name})")
    values: dict[str, str] = {}
    if name in UE_TRIGGERS:
        if name == "send_data":
            text = str((args.get("with") or {}).get("data", "conformance"))
            values = {"data": text.encode("utf-8").hex()}
            ctx.saved["ue.uplink_data"] = text
        ctx.hse.triggered()
    elif name == "provision":
        rand = secrets.token_bytes(16)
        keys = e2m_keys(ctx, rand, ctx.profile.pixit.emse_id)
        ue_id = ctx.profile.pixit.subscribers[0].imsi
        values = {"ue_id": ue_id, "rand": rand.hex(), "key_id": keys["key_id"].hex()}
        values["e2m_int_key"] = keys["e2m_int_key"].hex()
        ctx.saved["provisioned.rand"] = rand
    elif ctx.peers.emks is not None:
        ctx.saved.setdefault("emks.session", ctx.peers.emks.live_session(ctx.profile.pixit.emse_id))
    if name == "register":
        ctx.saved[REGISTER_TRIGGERED] = time.time()
    try:
        ctx.peers.triggers[name](**values)
    except Exception as exc:
        raise Inconclusive(f"trigger {name} failed: {exc}") from None


_ESTABLISHED_ONLY: Schema = not_here("taken only when the session must be established (expect: established)")
DTLS_SCHEMA = step(
    names(*DTLS_ACTIONS, title="action"),
    with_={
        **options(
            key={"type": "integer"},
            old=TRUE,
            psk=names("own", "wrong", "newest"),
            key_id={"const": "flipped"},
            ue_id={"const": "unknown"},
            identity={"const": "malformed"},
            ciphers={"type": "array", "items": STRING, "minItems": 1},
            cipher=STRING,
            expect=names(*DTLS_EXPECT),
            data=STRING,
        ),
        "if": {"properties": {"expect": {"enum": ["refused", "any"]}}, "required": ["expect"]},
        "then": {"properties": {"cipher": _ESTABLISHED_ONLY, "data": _ESTABLISHED_ONLY}},
    },
    rules=[when(["offer_dtls_1_0"], {"properties": {"with": not_here("offer_dtls_1_0 takes no options")}})],
)


@verb("dtls", schema=DTLS_SCHEMA)
def dtls(ctx: Context, args: dict[str, Any]) -> None:
    """handshake: a UE opens a DTLS-PSK session to the EMSE (seed 002 6.x.2.3) with the e2m_key of a provisioned AKA run
    as PSK and `dtls.psk_identity` naming the UE and the run's key id. with: key (run index, default -1, the
    newest), psk (own | wrong: one bit off | newest: the newest run's key), key_id (flipped: a key id no run
    has), ue_id (unknown: a UE the EMKS does not know), identity (malformed: no key id), ciphers (offered,
    default dtls.ciphers), cipher (the suite the session must use), old (the run must be older than the EMKS
    keeps), expect (established | refused | any), data (application data sent after the handshake).
    offer_dtls_1_0: a ClientHello offering only DTLS 1.0, which must be refused (TS 33.210 6.2)."""
    from conformance.dtls.psk import DtlsPskClient

    options = dict(args.get("with") or {})
    if args["_value"] == "offer_dtls_1_0":
        _offer_dtls_1_0(ctx)
        return
    if args["_value"] != "handshake":
        raise Inconclusive(f"unknown dtls action {args['_value']!r}; known: {', '.join(DTLS_ACTIONS)}")
    identity, psk = _psk_and_identity(ctx, options)
    ciphers = list(options.get("ciphers") or ctx.binding["dtls.ciphers"])
    sock = TappedUdpSocket(ctx.tap)
    try:
        client = DtlsPskClient(
            sock, ctx.profile.emse_endpoint, identity, psk, ciphers=ciphers, timeout=ctx.dtls_timing.reply()
        )
        started = time.perf_counter()
        try:
            session = client.handshake()
        except ConnectionRefusedError:  # ICMP port unreachable
            host, port = ctx.profile.emse_endpoint[:2]
            raise SutAbsent(f"nothing answers at {host}:{port} (ICMP port unreachable)") from None
        if session.established:
            ctx.dtls_timing.record(time.perf_counter() - started)
        if session.key_log:
            ctx.key_log.append(session.key_log)
        if _judged_established(session, options) and options.get("data"):
            client.send(str(options["data"]).encode())
    finally:
        sock.close()


def _psk_and_identity(ctx: Context, options: dict[str, Any]) -> tuple[str, bytes]:
    """The PSK identity and the PSK a handshake offers: a provisioned run's, or the forms a case asks for."""
    from conformance.dtls.psk import psk_identity

    emse_id = ctx.profile.pixit.emse_id
    ue_id, key_id, key, kept = provisioned_run(ctx, int(options.get("key", -1)), emse_id)
    if options.get("old") and kept:
        raise NotRun(
            f"AKA run {options.get('key')} is within the rest.past_keys_kept newest runs: "
            "pixit.subscribers[0].rands needs more runs"
        )
    psk = {
        "own": lambda: key,
        "wrong": lambda: bytes([key[0] ^ 0x01]) + key[1:],
        "newest": lambda: provisioned_run(ctx, -1, emse_id)[2],
    }[str(options.get("psk", "own"))]()
    if options.get("key_id") == "flipped":
        key_id = bytes(b ^ 0xFF for b in key_id)
    if options.get("ue_id") == "unknown":
        ue_id = "0" * len(ue_id)
    identity = psk_identity(ctx.binding, ue_id, key_id)
    if options.get("identity") == "malformed":
        identity = ue_id
    ctx.saved["dtls.identity"] = (ue_id, key_id)
    return identity, psk


def _judged_established(session: Any, options: dict[str, Any]) -> bool:
    """Judge the handshake against `expect`; True when the session is established as the case wants it."""
    expect = options.get("expect", "established")
    if expect == "any":
        return False
    if expect == "refused":
        if session.established:
            raise CheckFailed("the handshake refused", "no session (an alert or silence)", session.cipher)
        return False
    if not session.established:
        failed = NoAnswer if session.timed_out else CheckFailed
        raise failed("a DTLS-PSK session keyed with e2m_key", "the handshake completes", session.failure)
    if options.get("cipher") and session.cipher != options["cipher"]:
        raise CheckFailed("the cipher suite", options["cipher"], session.cipher)
    return True


def _offer_dtls_1_0(ctx: Context) -> None:
    from conformance.dtls.psk import probe_version

    sock = TappedUdpSocket(ctx.tap)
    try:
        outcome = probe_version(sock, ctx.profile.emse_endpoint, timeout=ctx.dtls_timing.reply())
    except ConnectionRefusedError:  # ICMP port unreachable
        host, port = ctx.profile.emse_endpoint[:2]
        raise SutAbsent(f"nothing answers at {host}:{port} (ICMP port unreachable)") from None
    finally:
        sock.close()
    if outcome == "accepted":
        raise CheckFailed("DTLS 1.0 refused (TS 33.210 6.2)", "an alert or silence", "a ServerHello for DTLS 1.0")
