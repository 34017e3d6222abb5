"""The keys a case expects, derived by the harness on its own from the PIXIT subscriber's K and OPc: the key
identifier of an AKA run, and the e2m keys of the AKA runs an EMKS was provisioned with (seed 002 6.x.2.1)."""

from __future__ import annotations

from typing import Any

from conformance.crypto.keys import KeyHierarchy, key_identifier
from conformance.crypto.milenage import Milenage, compute_opc
from conformance.engine.results import Inconclusive, NotRun


def key_id_for(ctx: Any, rand: bytes, keys: dict[str, bytes]) -> bytes:
    """The key identifier of the keys of one AKA run, by the binding's scheme (seed 002 6.x.2.1)."""
    binding = ctx.binding
    return key_identifier(
        binding["keys.key_identifier.scheme"],
        binding["keys.key_identifier.bits"],
        rand=rand,
        key=keys.get(binding["keys.key_identifier.hash_of"]),
        hash_name=binding["keys.key_identifier.hash"],
    )


def session_key_id(ctx: Any, session: Any) -> bytes:
    """The key identifier of a UE session's keys."""
    return key_id_for(ctx, session.rand, session.keys)


def provisioned_key(ctx: Any, spec: dict[str, Any], emse_id: str) -> tuple[str, bytes, bytes | None]:
    """(UE id, key id, e2m_key or None) of one AKA run the EMKS was provisioned with (`provisioned_run`).
    `expect: unknown` wants a run older than the `rest.past_keys_kept` newest ones (key None); a run outside
    the window the case needs is not applicable. `key_id: flipped | <hex>` asks under another key id (key None)."""
    ue_id, key_id, key, kept = provisioned_run(ctx, int(spec["provisioned"]), emse_id)
    unknown = spec.get("expect") == "unknown"
    if kept == unknown:
        raise NotRun(
            f"AKA run {spec['provisioned']} of {len(ctx.profile.pixit.subscribers[0].rands)} is "
            f"{'within' if kept else 'beyond'} the {ctx.binding['rest.past_keys_kept']} kept (rest.past_keys_kept)"
        )
    expected: bytes | None = None if unknown else key
    other = spec.get("key_id")
    if other == "flipped":
        key_id, expected = bytes(b ^ 0xFF for b in key_id), None
    elif other is not None:
        key_id, expected = bytes.fromhex(str(other)), None
    return ue_id, key_id, expected


def provisioned_run(ctx: Any, index: int, emse_id: str) -> tuple[str, bytes, bytes, bool]:
    """(UE id, key id, e2m_key, kept by the EMKS) of one AKA run of the first PIXIT subscriber: `index` into
    its `rands` (oldest first, negative from the end, -1 the newest). The harness derives the key itself
    (seed 002 6.x.2.1): MILENAGE f3/f4 on K/OPc give CK and IK for that RAND, e2m_int_key = KDF(CK||IK,
    string), e2m_key = KDF(e2m_int_key, EMSE_Id); the key id by the binding's scheme. Kept: within the
    `rest.past_keys_kept` newest runs."""
    subscriber = ctx.profile.pixit.subscribers[0]
    rands = subscriber.rands
    if not -len(rands) <= index < len(rands):
        raise NotRun(f"the case needs provisioned AKA run {index}; pixit.subscribers[0].rands has {len(rands)}")
    position = index % len(rands)
    keys = e2m_keys(ctx, rands[position], emse_id)
    kept = position >= len(rands) - ctx.binding["rest.past_keys_kept"]
    return subscriber.imsi, keys["key_id"], keys["e2m_key"], kept


def provisioned_new(ctx: Any, emse_id: str) -> tuple[str, bytes, bytes]:
    """(UE id, key id, e2m_key for this EMSE) of the AKA run the provision trigger made in this case."""
    rand = ctx.saved.get("provisioned.rand")
    if rand is None:
        raise Inconclusive("no AKA run was provisioned in this case (trigger: provision)")
    keys = e2m_keys(ctx, rand, emse_id)
    return ctx.profile.pixit.subscribers[0].imsi, keys["key_id"], keys["e2m_key"]


def e2m_keys(ctx: Any, rand: bytes, emse_id: str, subscriber: Any = None) -> dict[str, bytes]:
    """key_id, e2m_int_key and e2m_key of a subscriber's AKA run with this RAND, for one EMSE; the first PIXIT
    subscriber's unless another is given (a load user's ranged subscriber: only ctx.binding is read then)."""
    subscriber = subscriber or ctx.profile.pixit.subscribers[0]
    _res, ck, ik, _ak = Milenage(subscriber.k, subscriber.opc or compute_opc(subscriber.k, subscriber.op)).f2345(rand)
    hierarchy = KeyHierarchy.from_binding(ctx.binding)
    agreement = hierarchy.provisioning_agreement
    derived, skipped = hierarchy.derive_all(ck=ck, ik=ik, key_agreement=agreement, inputs={"emse_id": emse_id.encode()})
    if "e2m_key" not in derived:
        raise Inconclusive(f"the harness cannot derive e2m_key from this binding: {skipped.get('e2m_key')}")
    values = {name: d.value for name, d in derived.items()}
    return {"key_id": key_id_for(ctx, rand, values), "e2m_int_key": values["e2m_int_key"], "e2m_key": values["e2m_key"]}
