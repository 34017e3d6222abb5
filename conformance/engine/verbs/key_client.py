"""The key-server client the harness plays: the EAS towards an HSE, the EMSE towards an EMKS (`key_client`):
register, subscribe, fetch a UE's key and compare it with the harness's own derivation, expect a push,
deregister, and the negative forms (refused certificates, old TLS, malformed bodies)."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Any

import httpx

from conformance.engine.context import Context
from conformance.engine.expected_keys import provisioned_key, provisioned_new, session_key_id
from conformance.engine.results import CheckFailed, Inconclusive, NoAnswer
from conformance.engine.schema import (
    STRING,
    TRUE,
    Schema,
    binding_names,
    mapping,
    names,
    needs,
    not_with,
    only_with,
    options,
    step,
    when,
)
from conformance.engine.tls_outcomes import (
    control_connection,
    key_server_address,
    refusal,
    tls_only,
    transport_failure,
)
from conformance.engine.verbs.registry import verb
from conformance.keyserver.client import KeyServerError
from conformance.keyserver.xml import UeKey
from conformance.roles.emks import Exchange
from conformance.roles.key_client import KeyClient, answer_problem, fill_path, plain_http_exchange, raw_request

KEY_CLIENT_ACTIONS = (
    "register",
    "subscribe",
    "fetch_key",
    "expect_push",
    "deregister",
    "fetch_after_deregister",
    "post_raw",
    "old_tls",
    "tls_only",
    "plain_http",
    "http_upgrade",
    "request",
)
SESSION = "key_client.session"  # saved: the last session id registered; ".<identity>": each identity's
FETCHED = "key_client.keys"  # saved: (identity, key id) -> the key each identity fetched

RAW_BODIES = {  # post_raw body -> the rest.status list it is answered with by default
    "malformed": "bad_request",
    "schema_invalid": "bad_request",
    "entity_bomb": "bad_request",
    "oversized": "too_large",
    "oversized_chunked": "too_large",
    "wrong_content_type": "unsupported_media_type",
}


KEY_FORMS: Schema = {  # the key a fetch asks for (_fetch_key)
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
_PLAIN_ACTIONS = ("plain_http", "http_upgrade")  # HTTP in the clear on the TLS port (TS 33.210 6.2, RFC 2817)


def _action_option(action: str, **properties: Schema) -> Schema:
    """A rule: with this action, these options take only these values."""
    return when([action], {"properties": {"with": {"properties": properties}}})


KEY_CLIENT_SCHEMA = step(
    names(*KEY_CLIENT_ACTIONS, title="action"),
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
        method={"type": "string", "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", "description": "an HTTP method"},
        path={"type": "string", "description": "a path; {session}, {ue_id} and {key_id} are filled in"},
        headers={"type": "object", "additionalProperties": STRING, "title": "header field"},
        body_hex={"type": "string", "pattern": "^([0-9a-fA-F]{2})*$", "description": "hexadecimal octets"},
        pad={"type": "integer", "minimum": 0, "description": "octets of white space appended to the body"},
        no_key=TRUE,
    ),
    rules=[
        only_with(["register", "post_raw", "request"], "body"),
        only_with(["request"], "method", "path", "headers", "body_hex", "pad", "no_key"),
        needs(["request"], "method", "path"),
        not_with(["request"], "status"),
        _action_option("register", body=names("dtd_entity", title="register body")),
        _action_option("post_raw", body=names(*RAW_BODIES, title="post_raw body")),
        needs(["post_raw"], "body"),
        only_with(_TLS_ACTIONS, "version"),
        _action_option("old_tls", version=names("TLSv1", "TLSv1.1", title="old TLS version")),
        _action_option("tls_only", version=names("TLSv1.2", "TLSv1.3", title="TLS version")),
        not_with([*_TLS_ACTIONS, *_PLAIN_ACTIONS], "certificate"),
        not_with([*_TLS_ACTIONS, *_PLAIN_ACTIONS, "expect_push"], "status"),
        when(["register"], {}, otherwise={"properties": {"with": {"properties": {"status": _NOT_REFUSED}}}}),
        only_with([*_FETCHES, "expect_push", "request"], "key"),
        _action_option("expect_push", key=names("provisioned_new", title="pushed key")),
        only_with(_FETCHES, "ue_id", "distinct"),
        only_with(["subscribe", *_FETCHES, "deregister", "request"], "session_of"),
    ],
)


@verb("key_client", schema=KEY_CLIENT_SCHEMA)
def key_client(ctx: Context, args: dict[str, Any]) -> None:
    """A key-server client action: the EAS towards an HSE, the EMSE towards an EMKS (identity default
    pixit.eas_id, or pixit.emse_id when the SUT is an EMKS). The value: register, subscribe, fetch_key,
    expect_push, deregister, fetch_after_deregister, post_raw (a bad registration body, then the answer's
    status), old_tls (a TLS handshake capped at `version`, TLSv1 or TLSv1.1, must be refused), tls_only (a
    handshake offering only `version`, TLSv1.2 or TLSv1.3, must complete), plain_http (the registration sent
    as plain HTTP to the key server's TLS port must get no HTTP answer), http_upgrade (a plain-HTTP request
    asking to upgrade to TLS, RFC 2817, must get no HTTP answer either: 101 included), request (any request, as
    the fuzzer writes its findings: `method`, `path`, `headers`, `body` or `body_hex`, `pad`; the answer must
    come within the reply timeout and not be a server error; with `no_key`, it must not deliver a UE key).
    with: identity, certificate (own|none|foreign|<other identity>), session_of (use the session id this other
    identity registered, or `unissued`), key (session | next | old | bogus from the UE's session; or, towards an
    EMKS, provisioned_new (the run the provision trigger made) or {provisioned: N, expect: unknown,
    key_id: flipped|<hex>}: see `fetch_key`), ue_id, distinct,
    status (expected HTTP status list name from rest.status, for negative cases), body (register: dtd_entity,
    the client id comes from an internal DTD entity, which a key server must refuse rather than expand;
    post_raw: malformed | schema_invalid | entity_bomb | oversized | oversized_chunked | wrong_content_type;
    request: the body's text)."""
    options = dict(args.get("with") or {})
    action = args["_value"]
    identity = options.get("identity") or ctx.client_id
    if action in _TLS_ACTIONS:
        default = "TLSv1.1" if action == "old_tls" else "TLSv1.2"
        tls_only(ctx, identity, str(options.get("version", default)), accepted=action == "tls_only")
        return
    if action in _PLAIN_ACTIONS:
        _plain_http(ctx, identity, upgrade=action == "http_upgrade")
        return
    if options.get("status") == "refused":
        _refused(ctx, identity, options)
        return
    act = _ACTIONS.get(action)
    if act is None:
        raise Inconclusive(f"unknown key-client action {action!r}")
    role = ctx.key_client(options.get("identity"), certificate=options.get("certificate", "own"))
    try:
        act(ctx, role, identity, options)
    except KeyServerError as exc:
        raise CheckFailed(
            f"key-server client {action}", "a successful answer", f"HTTP {exc.status}: {exc.body!r}"
        ) from None
    except (httpx.TransportError, OSError) as exc:
        raise transport_failure(ctx, exc, f"key-server client {action}") from None


def _answered(ctx: Context, response: Any, status: str, what: str) -> None:
    """The answer's HTTP status must be in the binding's rest.status.<status> list."""
    allowed = ctx.binding[f"rest.status.{status}"]
    if response.status_code not in allowed:
        raise CheckFailed(f"{what} answered {status}", allowed, response.status_code)


def _register(ctx: Context, role: KeyClient, identity: str, options: dict[str, Any]) -> None:
    expected = options.get("status", "registered")
    response = role.client.request(
        "POST",
        role.client.path("register"),
        content=_registration_body(ctx, role, identity, options.get("body")),
        headers={"content-type": ctx.binding["rest.content_type"]},
    )
    _answered(ctx, response, expected, "registration")
    if expected == "registered":
        session = role.client.xml.parse_registration_answer(response.content)
        ctx.saved[SESSION] = ctx.saved[f"{SESSION}.{identity}"] = session


def _subscribe(ctx: Context, role: KeyClient, identity: str, options: dict[str, Any]) -> None:
    session = _session(ctx, identity, options)
    if "status" not in options:
        role.client.subscribe(session, role.push_receiver())
        return
    body = role.client.xml.subscription(role.push_receiver())
    response = role.client.request("POST", role.client.path("subscription", session_id=session), content=body)
    _answered(ctx, response, options["status"], "the subscription")


def _deregister(ctx: Context, role: KeyClient, identity: str, options: dict[str, Any]) -> None:
    session = _session(ctx, identity, options)
    response = role.client.request("DELETE", role.client.path("registration", session_id=session))
    _answered(ctx, response, options.get("status", "deregistered"), "deregistration")


def _refused(ctx: Context, identity: str, options: dict[str, Any]) -> None:
    """A registration with the certificate the case names (none, foreign, another identity's) must be refused
    at the TLS layer: a TLS alert or a handshake the server broke off, judged after a control connection with
    valid credentials succeeded. An HTTP answer of any status fails; nothing listening is no refusal."""
    control_connection(ctx)
    role = ctx.key_client(options.get("identity"), certificate=options.get("certificate", "own"))
    try:
        response = role.client.request(
            "POST", role.client.path("register"), content=role.client.xml.registration(identity)
        )
    except (httpx.TransportError, OSError) as exc:
        refusal(ctx, exc)  # raises when it is no refusal (nothing listens, no answer)
        return
    raise CheckFailed("a refused TLS connection", "a TLS alert or an aborted handshake", f"HTTP {response.status_code}")


def _plain_http(ctx: Context, identity: str, *, upgrade: bool) -> None:
    """HTTP in the clear to the key server's TLS port must get no HTTP answer (TS 33.210 6.2: HTTP runs in a raw
    TLS tunnel from the first octet, never plain nor upgraded per RFC 2817). upgrade=False: the registration
    POST, as `register` sends it inside TLS. upgrade=True: RFC 2817 3.2's mandatory upgrade, OPTIONS * with
    `Upgrade: TLS/<tls.min_version>` and `Connection: Upgrade`. A closed or reset connection, a TLS alert or no
    answer at all is the refusal (an absence: a later step must show the key server still serving); an HTTP
    answer in plaintext, whatever its status (101 Switching Protocols included), fails, and so does any other
    octet sent in the clear. Judged after a control connection, so that nothing listening is no refusal."""
    control_connection(ctx)
    host, port = key_server_address(ctx)
    content_type = ctx.binding["rest.content_type"]
    if upgrade:
        version = str(ctx.binding["tls.min_version"]).replace("TLSv", "TLS/")
        method, path, body = "OPTIONS", "*", b""
        headers = f"Upgrade: {version}\r\nConnection: Upgrade\r\n"
    else:
        method, path = "POST", ctx.binding["rest.paths.register"]
        body = ctx.key_client(identity).client.xml.registration(identity)
        headers = f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    request = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{headers}\r\n".encode("ascii") + body
    sent, timeout = time.time(), ctx.key_server_timing.reply()
    try:
        answer = plain_http_exchange(host, port, request, timeout)
    except OSError as exc:  # nothing listens (SutAbsent), or no TCP connection: nothing the SUT said to judge
        try:
            why = refusal(ctx, exc)
        except NoAnswer:
            why = f"the connect got no answer within {timeout:.2f}s"
        raise Inconclusive(f"no TCP connection for the plain-HTTP request: {why}") from None
    route = None if upgrade else "register"
    ctx.client_exchanges.append(
        Exchange(sent, method, path, route, {}, answer.status, None, None, "" if upgrade else content_type, body)
    )
    if answer.http or (answer.octets and not answer.tls):
        what = "an RFC 2817 Upgrade to TLS" if upgrade else "plain HTTP"
        raise CheckFailed(
            f"{what} on the key server's TLS port refused (TS 33.210 6.2: HTTP inside TLS from the first octet)",
            "no HTTP answer: the connection closed or reset, a TLS alert, or nothing",
            answer.describe(),
        )


def _expect_push(ctx: Context, role: KeyClient, identity: str, options: dict[str, Any]) -> None:
    """The next pushed key, sent over mutual TLS by a certified key server: towards an HSE, the UE's
    KInt_EAS_PSK; towards an EMKS (key: provisioned_new), the e2m_key of the AKA run the provision trigger
    just made, for this EMSE, under its UE identity and key identifier."""
    wait = ctx.key_server_timing.reply()
    try:
        doc, pusher = role.pushed.get(timeout=wait)
    except queue.Empty:
        raise NoAnswer("a pushed key", "a notification", f"none within {wait:.2f}s") from None
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
            doc, pusher = role.pushed.get(timeout=wait)
        except queue.Empty:
            raise NoAnswer("a pushed key", "a notification", f"none within {wait:.2f}s") from None
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


def _post_raw(ctx: Context, role: KeyClient, identity: str, options: dict[str, Any]) -> None:
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


NO_5XX = "an answer other than a server error (5xx)"
NO_HANG = "an answer within the reply timeout"
NO_KEY = "no UE key for a request that must be refused"


def _request(ctx: Context, role: KeyClient, identity: str, options: dict[str, Any]) -> None:
    """Any request (the fuzzer's findings, conformance.fuzz.keyserver): `path` with {session} (the session id
    `session_of` or this identity registered), {ue_id} and {key_id} (of `key`: session towards an HSE,
    {provisioned: -1} towards an EMKS) filled in. The answer must come within the reply timeout and not be a
    5xx; with `no_key`, it must not be a 2xx UE key document. A connection closed without an answer passes: a
    server may refuse so (the proof of life that follows shows whether it still serves)."""
    values: dict[str, str] = {}
    path = str(options["path"])
    if "{session}" in path:
        values["session"] = _session(ctx, identity, options)
    if "{ue_id}" in path or "{key_id}" in path:
        default: Any = {"provisioned": -1} if ctx.profile.sut.kind == "emks" else "session"
        ue_id, key_id, _ = _expected_key(ctx, options.get("key", default), identity)
        values["ue_id"], values["key_id"] = ue_id, key_id.hex()
    body = bytes.fromhex(options["body_hex"]) if "body_hex" in options else None
    if "body" in options:
        body = str(options["body"]).encode("utf-8")
    if options.get("pad"):
        body = (body or b"") + b" " * int(options["pad"])
    answer = raw_request(role.client, str(options["method"]), fill_path(path, values), options.get("headers"), body)
    problem = answer_problem(answer, role.client.xml, no_key=bool(options.get("no_key")))
    if problem is not None:
        expectation = {"no_5xx": NO_5XX, "no_hang": NO_HANG, "no_key_when_refused": NO_KEY}[problem[0]]
        raise CheckFailed(expectation, expectation, problem[1])


def _session(ctx: Context, identity: str | None = None, options: dict[str, Any] | None = None) -> str:
    """The session id to use: the one `session_of` registered if given (`unissued`: one nobody registered),
    else the identity's own, else the last one registered."""
    owner = (options or {}).get("session_of")
    if owner == "unissued":  # a well-formed session id no registration produced
        return "unissued-" + "0" * 14
    session = ctx.saved.get(f"{SESSION}.{owner or identity}")
    if session is None and owner is None:
        session = ctx.saved.get(SESSION)
    if session is None:
        raise Inconclusive(f"{owner or 'the key-server client'} is not registered")
    return session


def _fetch_key(ctx: Context, role: KeyClient, identity: str, options: dict[str, Any], *, deleted: bool = False) -> None:
    """Fetch a UE key as the key-server client and compare it with the harness's own. key: session | next |
    old | bogus (what the UE of the case derived, towards an HSE), or {provisioned: N, expect, key_id} (an
    EMKS's provisioned AKA run, see `provisioned_key`). with: ue_id (ask for another UE), status (the
    rest.status list the answer must be in, asked once: a negative case), distinct (the key differs from the
    one another identity fetched for the same key id: key separation between EMSEs). deleted: after the
    registration was deleted, the key server must not know it."""
    which = options.get("key", "session")
    session_id = _session(ctx, identity, options)
    ue_id, key_id, expected = _expected_key(ctx, which, identity)
    if "ue_id" in options:
        ue_id, expected = str(options["ue_id"]), None
    status = options.get("status")
    if status is None and (deleted or expected is None):
        status = "unknown_registration" if deleted else "unknown_key"
    path = role.client.path("ue_key", session_id=session_id, ue_id=ue_id, key_id=key_id.hex())
    if status is not None:  # a key that should not be given out is asked for once
        response = role.client.request("GET", path)
        if response.status_code not in ctx.binding[f"rest.status.{status}"]:
            raise CheckFailed(
                f"the key request answered {status}",
                ctx.binding[f"rest.status.{status}"],
                f"HTTP {response.status_code}",
            )
        return
    assert expected is not None
    # the next key's id may be the current key's (a SUT reusing RAND): until the SUT has taken the UE's answer to
    # Manage Keys in, it may still hand out the current key under it
    session = ctx.ue().session if which == "next" else None
    doc = _delivered_key(ctx, role, path, superseded=session.keys["kint_eas_psk"] if session else None)
    if (doc.ue_id, doc.key_id) != (ue_id, key_id):
        raise CheckFailed(
            "the key answer names the UE and key id asked for", (ue_id, key_id.hex()), (doc.ue_id, doc.key_id.hex())
        )
    if doc.key != expected:
        source = (
            "e2m_key the harness derived (seed 002 6.x.2.1)"
            if isinstance(which, dict)
            else ("KInt_EAS_PSK the UE derived (TS 33.163 Annex B)")
        )
        raise CheckFailed(f"the client gets the {source}", expected.hex(), doc.key.hex())
    fetched = ctx.saved.setdefault(FETCHED, {})
    if options.get("distinct"):
        _key_separation(fetched, identity, key_id, doc.key)
    fetched[(identity, key_id)] = doc.key
    ctx.saved["old_key_id"], ctx.saved["old_key"] = key_id, expected


def _fetch_after_deregister(ctx: Context, role: KeyClient, identity: str, options: dict[str, Any]) -> None:
    _fetch_key(ctx, role, identity, options, deleted=True)


def _expected_key(ctx: Context, which: Any, identity: str) -> tuple[str, bytes, bytes | None]:
    """(UE id, key id, the key the harness expects, or None when none may be given out) for a fetch's `key`."""
    if isinstance(which, dict):
        return provisioned_key(ctx, which, identity)
    if which == "provisioned_new":
        return provisioned_new(ctx, identity)
    ue = ctx.ue()
    if ue.session is None:
        raise Inconclusive("no UE session to compare keys with")
    if which == "next":
        key_id, expected = ctx.saved.get("next_key_id"), ctx.saved.get("next_keys", {}).get("kint_eas_psk")
        if key_id is None:
            raise Inconclusive("no Manage Keys run completed")
    elif which == "old":
        key_id, expected = ctx.saved.get("old_key_id"), ctx.saved.get("old_key")
    else:
        key_id, expected = session_key_id(ctx, ue.session), ue.session.keys["kint_eas_psk"]
    if which == "bogus":
        key_id, expected = bytes(b ^ 0xFF for b in key_id), None
    return ue.credentials.imsi, key_id, expected


def _delivered_key(ctx: Context, role: KeyClient, path: str, superseded: bytes | None = None) -> UeKey:
    """The key document the key server delivers. Nothing in BEST acknowledges the UE's last message, so a key
    may appear (or replace the `superseded` key under the same id) a moment after the UE is done: the SUT gets
    the key server's reply timeout for it."""
    deadline = time.monotonic() + ctx.key_server_timing.reply()
    while True:
        response = role.client.request("GET", path)
        delivered = response.status_code in ctx.binding["rest.status.key_delivered"]
        pending = response.status_code in ctx.binding["rest.status.unknown_key"] or (
            delivered and superseded is not None and role.client.xml.parse_ue_key(response.content).key == superseded
        )
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if not delivered:
        raise CheckFailed(
            "the key delivered",
            ctx.binding["rest.status.key_delivered"],
            f"HTTP {response.status_code}: {response.text[:200]}",
        )
    return role.client.xml.parse_ue_key(response.content)


def _key_separation(fetched: dict[tuple[str, bytes], bytes], identity: str, key_id: bytes, key: bytes) -> None:
    """The key differs from every key another identity fetched for the same key id (key separation)."""
    others = {who: other for (who, kid), other in fetched.items() if kid == key_id and who != identity}
    if not others:
        raise Inconclusive("no other identity fetched a key for this key id to compare with")
    same = sorted(who for who, other in others.items() if other == key)
    if same:
        raise CheckFailed("a key of its own for each client (key separation)", "different keys", {"same as": same})


_ACTIONS: dict[str, Callable[[Context, KeyClient, str, dict[str, Any]], None]] = {
    "register": _register,
    "subscribe": _subscribe,
    "fetch_key": _fetch_key,
    "fetch_after_deregister": _fetch_after_deregister,
    "expect_push": _expect_push,
    "deregister": _deregister,
    "post_raw": _post_raw,
    "request": _request,
}
