"""What a failed connection to a key server under test means, and the TLS-level checks that rest on it.

A refusal is evidence only when it is the SUT's answer to what the case presented: a TLS alert or a handshake
the server broke off, seen right after a control connection with valid credentials succeeded in the same case.
A refused TCP connection means nothing listens (the SUT is not there); a timeout means the SUT did not answer;
neither is a refusal.
"""

from __future__ import annotations

import socket
import ssl
import warnings
from collections.abc import Iterator
from urllib.parse import urlsplit

from conformance.engine.context import Context
from conformance.engine.results import CheckFailed, Inconclusive, NoAnswer, NotRun, SutAbsent

# TLS alerts a server sends when it does not accept the client's certificate
CERTIFICATE_ALERTS = ("UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_UNKNOWN", "CERTIFICATE_REQUIRED", "ACCESS_DENIED")


def key_server_address(ctx: Context) -> tuple[str, int]:
    url = ctx.profile.endpoints.key_server
    if not url:
        raise NotRun("the profile names no key-server endpoint (endpoints.key_server)")
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 443


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _named(exc: BaseException) -> str:
    for link in _chain(exc):
        if isinstance(link, ssl.SSLError):
            return f"TLS {link.reason or link}"
    return f"{type(exc).__name__}: {exc}"


def refusal(ctx: Context, exc: BaseException) -> str:
    """The TLS-level refusal `exc` shows (an alert, a handshake or connection the server broke off), as text;
    raises SutAbsent when nothing listens and NoAnswer when the server did not answer at all (a timeout)."""
    chain = list(_chain(exc))
    host, port = key_server_address(ctx)
    if any(isinstance(link, ConnectionRefusedError) for link in chain):
        raise SutAbsent(f"nothing answers at {host}:{port} (connection refused)")
    if any(isinstance(link, TimeoutError) or "Timeout" in type(link).__name__ for link in chain):
        within = f"within the reply timeout ({ctx.key_server_timing.reply():.2f}s)"
        raise NoAnswer("an answer from the key server", within, "no answer (timeout)")
    return _named(exc)


def transport_failure(ctx: Context, exc: BaseException, what: str) -> Exception:
    """The verdict's exception for a request with valid credentials that got no HTTP answer: SutAbsent (nothing
    listens), Inconclusive (the SUT refused the certificate the profile gave: a lab's configuration, not a
    judgement), NoAnswer otherwise (timeout, connection broken off)."""
    try:
        refused = refusal(ctx, exc)
    except (SutAbsent, NoAnswer) as outcome:
        return outcome
    if any(alert in refused.upper() for alert in CERTIFICATE_ALERTS):
        return Inconclusive(
            f"{what}: the key server refused the harness's client certificate ({refused}): check that the "
            "profile's tls files are issued by a CA the SUT trusts"
        )
    return NoAnswer(f"an HTTP answer to {what}", "a TLS connection with valid credentials", refused)


def control_connection(ctx: Context) -> None:
    """A TLS handshake with the default identity's own certificate, once per case: a refusal seen after it is
    the SUT's answer to what the case presented, not a server that is down or a lab's wrong certificate."""
    if ctx.saved.get("keyserver.control"):
        return
    negotiated, failure = handshake(ctx, ctx.client_id, None)
    if negotiated is None:
        raise Inconclusive(
            f"a control connection with valid credentials failed ({failure}), so a refusal cannot be judged"
        )
    ctx.saved["keyserver.control"] = negotiated


def handshake(ctx: Context, identity: str, version: str | None) -> tuple[str | None, str]:
    """(negotiated version or None, why not) of a TLS handshake with `identity`'s own certificate, offering
    only `version` (None: what the harness's library offers by default). Raises SutAbsent when nothing
    listens, NotRun when the harness's TLS library cannot offer that version."""
    host, port = key_server_address(ctx)
    ca, cert, key = ctx.client_material(identity)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert), None if key is None else str(key))
    if version is not None:
        with warnings.catch_warnings():  # the ssl module deprecates the very versions old_tls offers
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                context.minimum_version = context.maximum_version = ssl.TLSVersion[version.replace(".", "_")]
                if context.maximum_version < ssl.TLSVersion.TLSv1_2:
                    context.set_ciphers("DEFAULT:@SECLEVEL=0")
            except (KeyError, ValueError, ssl.SSLError) as exc:
                raise NotRun(f"the harness's TLS library cannot offer {version}: {exc}") from None
    try:
        with (
            socket.create_connection((host, port), timeout=ctx.key_server_timing.reply()) as sock,
            context.wrap_socket(sock, server_hostname=host) as tls,
        ):
            return tls.version(), ""
    except ssl.SSLError as exc:
        if exc.reason in ("NO_PROTOCOLS_AVAILABLE", "NO_CIPHERS_AVAILABLE"):
            raise NotRun(f"the harness's TLS library cannot offer {version}: {exc.reason}") from None
        return None, refusal(ctx, exc)
    except OSError as exc:
        return None, refusal(ctx, exc)


def tls_only(ctx: Context, identity: str, version: str, *, accepted: bool) -> None:
    """A TLS handshake (with the client's own certificate) offering only `version`. accepted=True: the SUT
    must complete it (tls_only: a version TS 33.210 6.2 requires). accepted=False: the SUT must refuse it
    (old_tls: below tls.min_version), judged after a control connection. Not run if the harness's own TLS
    library cannot offer that version."""
    if not accepted:
        control_connection(ctx)
    negotiated, failure = handshake(ctx, identity, version)
    if accepted and negotiated != version:
        raise CheckFailed(f"a {version}-only handshake completed (TS 33.210 6.2)", version, negotiated or failure)
    if not accepted and negotiated is not None:
        raise CheckFailed(f"a {version} handshake refused", f"at least {ctx.binding['tls.min_version']}", negotiated)
