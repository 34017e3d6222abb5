"""Checks on what a UE under test sent to the harness's HSE (the `check:` of a `from_ue` step). Each raises
CheckFailed with what was expected and what was observed; an absent field or TLV never passes a check.

The facts come from the harness's HSE (roles/hse.py: it knows the vector it sent, the session keys, the counters
it accepted); the checks that read a message the same way whoever sent it (cause, rejected_command, no_problems,
header fields) are the matchers of `expect` (engine/matchers.py), called as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conformance.emsdp.values import decode_ue_config, decode_value, tlv_values
from conformance.engine.matchers import HEADER_VALUE, MATCHER_SCHEMAS, MATCHERS
from conformance.engine.results import CheckFailed, Inconclusive, NotRun
from conformance.engine.schema import STRING, TRUE, Schema, names
from conformance.roles.hse import HarnessHse

Check = Callable[[Any, HarnessHse, Any, Any], None]  # (ctx, hse, message, expected)
UE_CHECKS: dict[str, Check] = {}
UE_CHECK_SCHEMAS: dict[str, Schema] = {}


def ue_check(name: str, schema: Schema) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        UE_CHECKS[name], UE_CHECK_SCHEMAS[name] = fn, schema
        return fn

    return register


def run_ue_checks(ctx: Any, hse: HarnessHse, packet: Any, checks: dict[str, Any]) -> None:
    for name, expected in checks.items():
        UE_CHECKS[name](ctx, hse, packet, expected)


def _tlv(packet: Any, name: str, expectation: str) -> bytes:
    value = tlv_values(packet).get(name)
    if value is None:
        raise CheckFailed(expectation, f"a {name} TLV", "absent")
    return value


def _shown(hse: HarnessHse, packet: Any) -> dict[str, Any]:
    return hse.codec.describe(packet)


for _name in ("cause", "rejected_command", "no_problems"):  # the `expect` matchers read these alike

    def _matcher(ctx: Any, hse: HarnessHse, packet: Any, expected: Any, _name: str = _name) -> None:
        MATCHERS[_name](ctx, hse, packet, expected, "hse")

    _matcher.__doc__ = MATCHERS[_name].__doc__
    ue_check(_name, MATCHER_SCHEMAS[_name])(_matcher)


def _header_check(name: str, doc: str, schema: Schema, session_value: Callable[[Any], int] | None = None) -> None:
    def check(ctx: Any, hse: HarnessHse, packet: Any, expected: Any) -> None:
        if expected == "session":
            if hse.session_of(packet) is None and hse.session is None:
                raise CheckFailed(f"header field {name} of the HSE's session", "a session", "none")
            expected = session_value(hse.session_of(packet) or hse.session)  # type: ignore[misc]
        MATCHERS["header"](ctx, hse, packet, {name: expected}, "hse")

    check.__doc__ = doc
    ue_check(name, schema)(check)


SESSION_VALUE: Schema = {
    "anyOf": [HEADER_VALUE, {"const": "session"}],
    "description": "a number, {not: number} or session",
}
_header_check(
    "session_id",
    "The header's Session ID equals this number (or {not: n}), or `session`: the HSE's session's.",
    SESSION_VALUE,
    lambda session: session.id,
)
_header_check(
    "key_id",
    "The header's Key ID equals this number (or {not: n}), or `session`: the Key ID of the session's keys.",
    SESSION_VALUE,
    lambda session: session.key_id,
)
for _field in ("rfu", "up_cp"):
    _header_check(_field, f"The header's {_field} equals this number (or {{not: n}}).", HEADER_VALUE)


@ue_check(
    "counter",
    {"anyOf": [HEADER_VALUE, {"const": "fresh"}], "description": "a number, {not: number} or fresh"},
)
def counter(ctx: Any, hse: HarnessHse, packet: Any, expected: Any) -> None:
    """The header's counter equals this number (or {not: n}), or `fresh`: above the last the HSE accepted from
    the UE on that plane of the session (a replayed or reused counter fails)."""
    if expected != "fresh":
        MATCHERS["header"](ctx, hse, packet, {"counter": expected}, "hse")
        return
    session = hse.session_of(packet)
    last = None if session is None else session.ue_up if packet.plane == "up" else session.ue_cp
    if not hse.fresh(packet):
        raise CheckFailed("a fresh counter (above the last the HSE accepted)", f"above {last}", packet.counter)


@ue_check("identity", names("imsi", "suci", title="identity"))
def identity(ctx: Any, hse: HarnessHse, packet: Any, expected: str) -> None:
    """The Session Request names the UE by this identity TLV (imsi or suci), and it is the subscriber's
    (pixit.subscribers[0]): a SUCI de-conceals to its IMSI with the PIXIT's home network keys."""
    if expected == "suci" and not hse.hn_keys:
        raise NotRun("a SUCI is checked with the home network's private key (pixit.home_network_keys: private_key)")
    kind, imsi, why = hse.identity(packet)
    observed = {"identity": kind, "imsi": imsi, **({"problem": why} if why else {})}
    if kind != expected:
        raise CheckFailed("the identity TLV of the Session Request", expected, observed)
    wanted = hse.subscriber.imsi
    if imsi != wanted:
        how = " de-concealed with pixit.home_network_keys" if kind == "suci" else ""
        raise CheckFailed(f"the UE's IMSI (pixit.subscribers[0]){how}", wanted, observed)


@ue_check("serving_network", {**STRING, "description": "present, absent, or the value it names"})
def serving_network(ctx: Any, hse: HarnessHse, packet: Any, expected: str) -> None:
    """The Serving Network TLV is present, absent, or names this value (a serving network name, or a PLMN id in
    hex under the binding's plmn_id encoding)."""
    value = tlv_values(packet).get("serving_network")
    try:
        shown = None if value is None else decode_value(hse.layout, "serving_network", value)
    except ValueError as exc:
        shown = f"undecodable: {exc}"
    if expected == "absent":
        if value is not None:
            raise CheckFailed("no Serving Network TLV", "absent", shown)
        return
    if value is None:
        raise CheckFailed("the Serving Network TLV", expected, "absent")
    if expected != "present" and shown != expected:
        raise CheckFailed("the serving network the UE names", expected, shown)


@ue_check("ue_config", {"const": "matches_pics"})
def ue_config(ctx: Any, hse: HarnessHse, packet: Any, expected: str) -> None:
    """The UE configuration offers exactly the key agreements the PICS claim, and asks for confidentiality when
    the PICS claim the up_confidential service. Takes `matches_pics`."""
    value = _tlv(packet, "ue_config", "the UE configuration TLV")
    try:
        decoded = decode_ue_config(hse.layout, value)
    except ValueError as exc:
        raise CheckFailed("the UE configuration TLV", "a value of the binding's size", str(exc)) from None
    pics = ctx.profile.pics
    wanted = {
        "key_agreements": sorted(pics.key_agreements),
        "confidentiality_requested": "up_confidential" in pics.services,
    }
    observed = {**decoded, "key_agreements": sorted(decoded["key_agreements"])}
    if any(observed[k] != v for k, v in wanted.items()):
        raise CheckFailed("the UE configuration matches the PICS", wanted, observed)


@ue_check("enterprise_setup", TRUE)
def enterprise_setup(ctx: Any, hse: HarnessHse, packet: Any, expected: bool) -> None:
    """The Enterprise Setup Information names the EAS of the PIXIT (pixit.eas_id). Takes `true`."""
    value = _tlv(packet, "enterprise_setup", "the enterprise setup TLV")
    wanted = ctx.profile.pixit.eas_id
    if value != wanted.encode("utf-8"):
        raise CheckFailed("the EAS the UE names (pixit.eas_id)", wanted, value.decode("utf-8", "replace"))


@ue_check("res", {"const": "correct"})
def res(ctx: Any, hse: HarnessHse, packet: Any, expected: str) -> None:
    """RES equals the XRES of the vector the HSE sent last (Session Start or Manage Keys Request). Takes
    `correct`."""
    value = _tlv(packet, "res", "RES")
    if not hse.res_correct(value):
        wanted = hse.vector.xres.hex() if hse.vector else "a vector sent first"
        raise CheckFailed("RES equals the XRES of the HSE's last vector", wanted, value.hex())


@ue_check("auts", {"const": "verifies"})
def auts(ctx: Any, hse: HarnessHse, packet: Any, expected: str) -> None:
    """The AUTS verifies (MAC-S under the subscriber's K, for the last vector's RAND); the HSE resynchronises its
    SQN past the USIM's. Takes `verifies`."""
    value = _tlv(packet, "auts", "AUTS (a synchronisation failure)")
    why = hse.resynchronise(value)
    if why is not None:
        raise CheckFailed("an AUTS that verifies for the HSE's last RAND", "MAC-S verifies", f"{value.hex()}: {why}")


@ue_check("mac", {"const": "verifies"})
def mac(ctx: Any, hse: HarnessHse, packet: Any, expected: str) -> None:
    """The message carries a MAC (a Key ID other than 0) that verifies under the keys of the session it names
    (uplink COUNT). Takes `verifies`."""
    if not packet.key_id:
        raise CheckFailed("a protected message", "a Key ID other than 0, and a MAC", _shown(hse, packet))
    if hse.session_of(packet) is None:
        raise CheckFailed(
            "a message of the HSE's session", f"session {getattr(hse.session, 'id', None)}", _shown(hse, packet)
        )
    if not hse.verifies(packet):
        raise CheckFailed("a MAC that verifies under the session's keys", "verifies", _shown(hse, packet))


@ue_check("mandatory_tlvs", TRUE)
def mandatory_tlvs(ctx: Any, hse: HarnessHse, packet: Any, expected: bool) -> None:
    """Every TLV the binding makes mandatory for the message's command (emsdp.tlv_lists.<command>_mandatory) is
    there. Takes `true`."""
    MATCHERS["mandatory_tlvs"](ctx, hse, packet, hse.name(packet), "hse")


@ue_check("ciphered", TRUE)
def ciphered(ctx: Any, hse: HarnessHse, packet: Any, expected: bool) -> None:
    """Uplink user data does not travel in the clear: its octets are not the text the case had the UE send (the
    send_data trigger's, or the downlink text its test loop sends back), and they decipher to that text under
    the session's user-plane ciphering key. Takes `true`."""
    known = {str(ctx.saved[k]).encode("utf-8") for k in ("ue.uplink_data", "hse.downlink_data") if k in ctx.saved}
    if not known:
        raise Inconclusive("no text the case had the UE send, to tell ciphered user data from clear")
    if packet.plane != "up" or hse.session_of(packet) is None:
        raise CheckFailed("user data of the HSE's session", "ciphered user data", _shown(hse, packet))
    if packet.data in known:
        raise CheckFailed("ciphered user data", "not the plaintext", {"data": packet.data.decode("utf-8", "replace")})
    if hse.plaintext(packet) not in known:
        raise CheckFailed(
            "user data that deciphers to the text sent", sorted(k.decode() for k in known), {"data": packet.data.hex()}
        )


@ue_check("data", STRING)
def data(ctx: Any, hse: HarnessHse, packet: Any, expected: str) -> None:
    """Uplink user data whose MAC verifies and that deciphers (a confidential session) to this text."""
    mac(ctx, hse, packet, "verifies")
    plain = hse.plaintext(packet)
    if plain != expected.encode("utf-8"):
        shown = plain.decode("utf-8", "replace") if plain is not None else "absent"
        raise CheckFailed("the user data the UE sent", expected, shown)
