"""Matchers: checks on a received message (the `check:` of an `expect` step). Each raises CheckFailed with
what was expected and what was observed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conformance.crypto.aka import AutnOutcome
from conformance.emsdp.values import decode_hse_config, tlv_values
from conformance.engine.expected_keys import key_id_for
from conformance.engine.results import CheckFailed, Inconclusive
from conformance.engine.schema import STRING, TRUE, Schema, binding_names, mapping, names, one_or_list
from conformance.roles.errors import ProtocolError

MATCHERS: dict[str, Callable[..., None]] = {}
MATCHER_SCHEMAS: dict[str, Schema] = {}  # name -> JSON Schema of the matcher's argument (engine.schema)


def matcher(name: str, schema: Schema | None = None) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register a matcher under `name`, with the JSON Schema of the argument it takes (the linter checks every
    case's argument against it)."""

    def register(fn: Callable[..., None]) -> Callable[..., None]:
        MATCHERS[name] = fn
        if schema is not None:
            MATCHER_SCHEMAS[name] = schema
        return fn

    return register


def run_checks(ctx: Any, ue: Any, packet: Any, checks: dict[str, Any], name: str) -> None:
    for key, expected in checks.items():
        MATCHERS[key](ctx, ue, packet, expected, name)


def _equal(expectation: str, expected: Any, observed: Any) -> None:
    """observed equals expected, or for {not: v} differs from v. An absent value (None) satisfies neither: a check
    is never passed by what is not there."""
    negated = isinstance(expected, dict) and set(expected) == {"not"}
    if observed is None:
        raise CheckFailed(expectation, f"not {expected['not']!r}" if negated else expected, "absent")
    if negated:
        if observed == expected["not"]:
            raise CheckFailed(expectation, f"not {expected['not']!r}", observed)
    elif observed != expected:
        raise CheckFailed(expectation, expected, observed)


def _only(matcher_name: str, allowed: Any, given: Any) -> None:
    """A matcher given a value it does not honour is a fault of the case, not a pass (the linter refuses it)."""
    if given != allowed or type(given) is not type(allowed):
        raise ValueError(f"matcher {matcher_name} takes only {allowed!r}, got {given!r}")


def _command(ctx: Any, packet: Any) -> str | None:
    return ctx.layout.command_names().get(getattr(packet, "cmd", None))


def _tlv(ctx: Any, packet: Any, tlv: str, matcher_name: str) -> bytes | None:
    """The value of the TLV a check is about, following the binding's M/O/C rules. Absent where the binding makes
    it mandatory for the message's command (emsdp.tlv_lists.<command>_mandatory; "a|b" = one of them): a
    failure. Absent where it is optional (or one of "a|b" whose other is there): None, the check is not made and
    the case does not rest on it (noted in ctx.saved["unchecked"]); its absence is never a failure."""
    value = tlv_values(packet).get(tlv)
    if value is not None:
        return value
    command = _command(ctx, packet)
    key = f"emsdp.tlv_lists.{command}_mandatory"
    present = tlv_values(packet)
    for item in ctx.binding.get(key) or []:
        alternatives = item.split("|")
        if tlv in alternatives and not any(alt in present for alt in alternatives):
            raise CheckFailed(f"the {tlv} TLV of the {command}", f"present (mandatory per {key})", "absent")
    ctx.saved.setdefault("unchecked", []).append(
        f"{matcher_name}: not checked, the {command} carries no {tlv} TLV (optional: not in {key})"
    )
    return None


HEADER_VALUE: Schema = {
    "anyOf": [{"type": "integer", "minimum": 0}, mapping({"not": {"type": "integer"}}, required=["not"])],
    "description": "a number or {not: number}",
}


@matcher("no_problems", schema=TRUE)
def no_problems(ctx: Any, ue: Any, packet: Any, expected: bool, name: str) -> None:
    """The message decodes cleanly: no truncated or wrong-size TLV, no unknown tag or command. Takes `true`."""
    _only("no_problems", True, expected)
    if packet.problems:
        raise CheckFailed("a well-formed message", "no problems", packet.problems)


@matcher(
    "header",
    schema={
        "type": "object",
        "title": "header field",
        "minProperties": 1,
        "binding_keys": {"of": "emsdp.header.fields", "values": HEADER_VALUE},
    },
)
def header(ctx: Any, ue: Any, packet: Any, expected: dict[str, Any], name: str) -> None:
    """Header fields equal (or {not: value}), e.g. {session_id: {not: 0}, key_id: 0}; an absent field fails."""
    for field, value in expected.items():
        try:
            observed = packet.getfieldval(field)
        except AttributeError:
            observed = None
        _equal(f"header field {field}", value, observed)


TLV_LIST: Schema = binding_names("emsdp.tlv_lists", suffix="_mandatory", title="TLV list")


@matcher("mandatory_tlvs", schema=TLV_LIST)
def mandatory_tlvs(ctx: Any, ue: Any, packet: Any, command: str, name: str) -> None:
    """Every TLV the binding lists as mandatory for `command` (emsdp.tlv_lists.<command>_mandatory) is there."""
    present = tlv_values(packet)
    missing = [
        item
        for item in ctx.binding[f"emsdp.tlv_lists.{command}_mandatory"]
        if not any(alt in present for alt in item.split("|"))
    ]
    if missing:
        raise CheckFailed(
            f"the mandatory TLVs of {command}", "all present", {"missing": missing, "present": sorted(present)}
        )


@matcher("tlv_order", schema=TLV_LIST)
def tlv_order(ctx: Any, ue: Any, packet: Any, command: str, name: str) -> None:
    """The TLVs the binding lists as mandatory for `command` are all there, in the order it lists them."""
    key = f"emsdp.tlv_lists.{command}_mandatory"
    items = ctx.binding[key]
    if not items:
        raise Inconclusive(f"{key} names no TLVs: there is no order to check")
    order = [alt for item in items for alt in item.split("|")]
    seen = [t.tag_name for t in packet.tlvs if getattr(t, "tag_name", None) in order]
    missing = [item for item in items if not any(alt in seen for alt in item.split("|"))]
    if missing:
        raise CheckFailed(f"TLVs of {command} in binding order", order, {"missing": missing, "present": seen})
    if seen != sorted(seen, key=order.index):
        raise CheckFailed(f"TLVs of {command} in binding order", order, seen)


@matcher("cause", schema=binding_names("emsdp.reject_causes", title="cause"))
def cause(ctx: Any, ue: Any, packet: Any, expected: str, name: str) -> None:
    """A Message Reject's cause TLV names this cause of the binding (emsdp.reject_causes). Absent: a failure
    where the binding makes the TLV mandatory, else not checked."""
    value = _tlv(ctx, packet, "cause", "cause")
    if value is None:
        return
    observed = ctx.layout.cause_names().get(value[0], value.hex()) if value else "an empty value"
    _equal("the reject cause", expected, observed)


@matcher("rejected_command", schema=binding_names("emsdp.commands", title="command"))
def rejected_command(ctx: Any, ue: Any, packet: Any, expected: str, name: str) -> None:
    """A Message Reject names the command it rejects. The TLV is optional unless the binding makes it mandatory
    (emsdp.tlv_lists.message_reject_mandatory): absent and optional, it is not checked; present, its value is."""
    value = _tlv(ctx, packet, "rejected_command", "rejected_command")
    if value is None:
        return
    observed = ctx.layout.command_names().get(value[0], value.hex()) if value else "an empty value"
    _equal("the rejected command", expected, observed)


AUTN_OUTCOMES = ("verifies", *(o.value for o in AutnOutcome if o is not AutnOutcome.OK))


@matcher("autn", schema=names(*AUTN_OUTCOMES, title="outcome"))
def autn(ctx: Any, ue: Any, packet: Any, expected: str, name: str) -> None:
    """Run the USIM on a Session Start: 'verifies' (MAC-A, SQN, AMF separation bit all good; the session
    opens), or the failure it must produce: mac_failure, synch_failure (AUTS is kept for the next step)."""
    try:
        check = ue.accept_session_start(packet)
    except ProtocolError as exc:
        raise CheckFailed("a Session Start the USIM can check", "RAND, AUTN and HSE configuration", str(exc)) from None
    observed = "verifies" if check.outcome is AutnOutcome.OK else check.outcome.value
    if check.outcome is AutnOutcome.SYNCH_FAILURE:
        ctx.saved[f"{name}.auts"] = check.auts
        ctx.saved[f"{name}.session_id"] = packet.session_id
    _equal(
        "the USIM's verdict on AUTN",
        expected,
        f"{observed}" + (f" ({check.reason})" if check.reason and observed != expected else ""),
    )


@matcher("request_checksum", schema=names("valid", "invalid"))
def request_checksum(ctx: Any, ue: Any, packet: Any, expected: str, name: str) -> None:
    """The Session Start's checksum covers the Session Request the UE sent ('valid'); run after autn."""
    if _tlv(ctx, packet, "request_checksum", "request_checksum") is None:
        return
    if ue.session is None:
        raise Inconclusive("the checksum can only be checked once the session keys are known")
    _equal("the request checksum", expected, "valid" if ue.session.checksum_ok else "invalid")


HSE_CONFIG_SCHEMA: Schema = {
    "type": "object",
    "title": "HSE configuration field",
    "minProperties": 1,
    "binding_keys": {
        "of": "emsdp.hse_config.fields",
        "plus": ["start_confirmation_required"],
        "properties": {
            "service": one_or_list(binding_names("emsdp.hse_config.services", title="service")),
            "mode": one_or_list(binding_names("emsdp.hse_config.modes", title="mode")),
            "key_agreement": one_or_list(binding_names("emsdp.ue_config.key_agreement_bits", title="key agreement")),
            "start_confirmation_required": one_or_list({"type": "boolean"}),
        },
        "values": one_or_list({"type": "integer", "minimum": 0}),
    },
}


@matcher("hse_config", schema=HSE_CONFIG_SCHEMA)
def hse_config(ctx: Any, ue: Any, packet: Any, expected: dict[str, Any], name: str) -> None:
    """Fields of the HSE configuration TLV, e.g. {service: up_integrity, start_confirmation_required: true};
    a list means any of them."""
    value = _tlv(ctx, packet, "hse_config", "hse_config")
    if value is None:
        return
    try:
        decoded = decode_hse_config(ctx.layout, value)
    except ValueError as exc:  # what the SUT sent does not read as an HSE configuration: its fault, not ours
        raise CheckFailed("the HSE configuration TLV", "a value of the binding's size and fields", str(exc)) from None
    for field, want in expected.items():
        got = decoded.get(field)
        if isinstance(want, list) and got not in want:
            raise CheckFailed(f"HSE configuration {field}", f"one of {want}", "absent" if got is None else got)
        if not isinstance(want, list):
            _equal(f"HSE configuration {field}", want, got)


@matcher("protected", schema=TRUE)
def protected(ctx: Any, ue: Any, packet: Any, expected: bool, name: str) -> None:
    """A downlink message under the session's keys: its MAC verifies and its counter is fresh. Takes `true`."""
    _only("protected", True, expected)
    try:
        ue.check_downlink(packet)
    except ProtocolError as exc:
        raise CheckFailed(
            "a downlink message protected with the session's keys", "MAC and counter good", str(exc)
        ) from None


@matcher("data", schema=STRING)
def data(ctx: Any, ue: Any, packet: Any, expected: str, name: str) -> None:
    """UP data that verifies and deciphers to this text (the reference application echoes what it got)."""
    try:
        plain = ue.check_downlink(packet)
    except ProtocolError as exc:
        raise CheckFailed("user data protected with the session's keys", "MAC and counter good", str(exc)) from None
    _equal("the user data", expected.encode(), plain)


VECTORS = "vectors"  # ctx.saved: IMSI -> [(message, RAND, SQN)] of each AKA vector the case's UEs were sent


def note_vector(ctx: Any, ue: Any, packet: Any) -> None:
    """Keep the AKA vector (RAND, and the SQN its AUTN carries) of a Session Start or Manage Keys Request the UE
    received, for `vector: fresh` in a later step. A message is kept once, whoever saw it."""
    rand = tlv_values(packet).get("rand")
    if not rand:
        return
    raw = bytes(packet)
    seen = ctx.saved.setdefault(VECTORS, {}).setdefault(ue.credentials.imsi, [])
    if all(kept != raw for kept, _, _ in seen):
        seen.append((raw, rand, ue.sqn_of(packet)))


@matcher("vector", schema={"const": "fresh"})
def vector(ctx: Any, ue: Any, packet: Any, expected: str, name: str) -> None:
    """The AKA vector of a Session Start or Manage Keys Request is new for the subscriber, against every vector
    the case's UEs were sent before: its RAND is another (TS 33.102 6.3.2: a random challenge per vector), so is
    its key identifier where the binding takes it from RAND (keys.key_identifier.scheme rand_lsb), and its SQN is
    higher (6.3.3). Inconclusive when the case saw no earlier vector of the subscriber. Takes `fresh`."""
    _only("vector", "fresh", expected)
    rand = _tlv(ctx, packet, "rand", "vector")
    if rand is None:
        return
    sqn = ue.sqn_of(packet)
    if sqn is None:
        raise CheckFailed("an AUTN to read the vector's SQN from", "16 octets", tlv_values(packet).get("autn"))
    raw = bytes(packet)
    earlier = [(r, s) for kept, r, s in ctx.saved.get(VECTORS, {}).get(ue.credentials.imsi, []) if kept != raw]
    if not earlier:
        raise Inconclusive("no earlier AKA vector of this subscriber in the case to compare this one with")
    if any(r == rand for r, _ in earlier):
        raise CheckFailed("a RAND not sent to this subscriber before (TS 33.102 6.3.2)", "a new RAND", rand.hex())
    if ctx.binding["keys.key_identifier.scheme"] == "rand_lsb":
        key_id = key_id_for(ctx, rand, {})
        if any(key_id_for(ctx, r, {}) == key_id for r, _ in earlier):
            raise CheckFailed(
                "a key identifier (from RAND, keys.key_identifier) not used before for this subscriber",
                "a new key identifier",
                {"key_id": key_id.hex(), "rand": rand.hex()},
            )
    highest = max((s for _, s in earlier if s is not None), default=None)
    if highest is not None and sqn <= highest:
        raise CheckFailed(
            "an SQN above every earlier one of this subscriber (TS 33.102 6.3.3)",
            f"above {highest:012x}",
            f"{sqn:012x}",
        )
    note_vector(ctx, ue, packet)


@matcher("from_port", schema={"const": "same"})
def from_port(ctx: Any, ue: Any, packet: Any, expected: str, name: str) -> None:
    """The reply came from the address and port the UE sent to. Takes `same`."""
    _only("from_port", "same", expected)
    observed = ue.received_from
    if observed is None:
        raise CheckFailed("the reply's source", f"{ue.hse[0]}:{ue.hse[1]}", "absent")
    if (observed[0], observed[1]) != tuple(ue.hse):
        raise CheckFailed("the reply's source", f"{ue.hse[0]}:{ue.hse[1]}", f"{observed[0]}:{observed[1]}")
