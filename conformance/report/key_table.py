"""What `best-conformance keys` shows: MILENAGE outputs, AUTN and the BEST / e2m key hierarchy of one AKA run.

A plugfest engineer compares these byte by byte with a SUT's trace, so each derived key comes with the exact KDF
inputs it used and whether it rests on a binding value that no spec clause confirms. The derivations are crypto's;
this module only asks the binding where each value comes from, which crypto must not know.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conformance.binding import Binding
from conformance.crypto.aka import generate_vector
from conformance.crypto.keys import DerivedKey, KeyHierarchy, key_identifier
from conformance.crypto.milenage import Milenage


class UnknownKeyAgreement(ValueError):
    """The key agreement asked for is not one the binding roots the BEST keys on."""


@dataclass(frozen=True)
class KeyTable:
    """One AKA run and the key hierarchy derived from it, for a table or for JSON."""

    aka: dict[str, bytes]  # OPc, the MILENAGE outputs, AUTN and SQN ⊕ AK, in the order they are shown
    key_id: bytes | None  # None when the binding's scheme hashes a key that was not derived
    key_agreement: str
    derived: dict[str, DerivedKey]
    hierarchy: list[dict[str, Any]]  # per derived key: FC, KDF key, inputs, value, binding-dependent, source
    not_derived: dict[str, str]  # key name -> why it could not be derived

    def to_document(self) -> dict[str, Any]:
        """The JSON of `keys --json`: lower-case hex fields by name, then the hierarchy."""
        document: dict[str, Any] = {name: value.hex() for name, value in self.aka.items()}
        if self.key_id is not None:
            document["key_id"] = self.key_id.hex()
        document.update({name: d.value.hex() for name, d in self.derived.items()})
        document["key_agreement"] = self.key_agreement
        document["hierarchy"] = self.hierarchy
        document["not_derived"] = self.not_derived
        return document


def choose_key_agreement(binding: Binding, asked: str | None, *, snn: str | None, sn_id: bytes | None) -> str:
    """The key agreement asked for, else the one the inputs point at: 5g_aka with a serving network name, eps
    with a PLMN id, else umts. Raises UnknownKeyAgreement when the binding roots no keys on it."""
    roots = binding.section("keys.root_by_key_agreement")
    agreement = asked or ("5g_aka" if snn else "eps" if sn_id else "umts")
    if agreement not in roots:
        raise UnknownKeyAgreement(f"must be one of {', '.join(roots)}, got {agreement!r}")
    return agreement


def derive_key_table(
    binding: Binding,
    *,
    k: bytes,
    op: bytes | None = None,
    opc: bytes | None = None,
    rand: bytes,
    sqn: bytes,
    amf: bytes,
    sn_id: bytes | None = None,
    snn: str | None = None,
    eas_id: str | None = None,
    emse_id: str | None = None,
    third_party_key: bytes | None = None,
    naf_key: bytes | None = None,
    key_agreement: str | None = None,
) -> KeyTable:
    """Run MILENAGE (from OP or OPc) and derive every key of the binding's hierarchy the inputs given allow.
    Raises UnknownKeyAgreement before deriving anything."""
    agreement = choose_key_agreement(binding, key_agreement, snn=snn, sn_id=sn_id)
    milenage = Milenage(k, opc) if opc else Milenage.from_op(k, op)  # type: ignore[arg-type]
    out = milenage.run(rand, sqn, amf)
    vector = generate_vector(milenage, rand, sqn, amf)
    inputs: dict[str, bytes] = {
        "rand": rand,
        "sqn_xor_ak": vector.sqn_xor_ak,
        "enc_alg_id": bytes([binding["protection.algorithm_ids.ciphering"]]),
        "int_alg_id": bytes([binding["protection.algorithm_ids.integrity"]]),
    }
    for name, value in (("sn_id", sn_id), ("snn", snn), ("eas_id", eas_id), ("emse_id", emse_id)):
        if value is not None:
            inputs[name] = value.encode("utf-8") if isinstance(value, str) else value
    if third_party_key is not None:
        inputs["third_party_key"] = third_party_key
    derived, skipped = KeyHierarchy.from_binding(binding).derive_all(
        ck=out.ck, ik=out.ik, key_agreement=agreement, inputs=inputs, naf_key=naf_key
    )
    key_id = _key_id(binding, rand, derived)
    aka = {
        "opc": milenage.opc,
        "mac_a": out.mac_a,
        "mac_s": out.mac_s,
        "res": out.res,
        "ck": out.ck,
        "ik": out.ik,
        "ak": out.ak,
        "ak_star": out.ak_star,
        "autn": vector.autn,
        "sqn_xor_ak": vector.sqn_xor_ak,
    }
    dependent = _binding_dependent(binding, derived, agreement)
    hierarchy = [_key_entry(binding, d, d.spec.name in dependent) for d in derived.values()]
    return KeyTable(aka, key_id, agreement, derived, hierarchy, skipped)


def _key_id(binding: Binding, rand: bytes, derived: dict[str, DerivedKey]) -> bytes | None:
    """The key identifier per the binding's scheme; None when it hashes a key that was not derived."""
    scheme = binding["keys.key_identifier.scheme"]
    hashed = derived.get(binding["keys.key_identifier.hash_of"])
    if scheme == "key_hash" and hashed is None:
        return None
    return key_identifier(
        scheme,
        binding["keys.key_identifier.bits"],
        rand=rand,
        key=hashed.value if hashed else None,
        hash_name=binding["keys.key_identifier.hash"],
    )


def _binding_dependent(binding: Binding, derived: dict[str, DerivedKey], agreement: str) -> set[str]:
    """Keys whose value rests, directly or through the key they were derived from, on a binding value that
    no spec clause confirms."""
    memo: dict[str, bool] = {}

    def dependent(name: str) -> bool:
        if name not in memo:
            d = derived[name]
            head = f"keys.derivations.{name}"
            fields = [binding.param(f"{head}.{f}") for f in ("fc", "key", "params", "out_bits", "take")]
            if d.spec.key == "root":
                fields.append(binding.param(f"keys.root_by_key_agreement.{agreement}"))
            memo[name] = any(not p.confirmed for p in fields) or (d.key_name in derived and dependent(d.key_name))
        return memo[name]

    return {name for name in derived if dependent(name)}


def _key_entry(binding: Binding, d: DerivedKey, dependent: bool) -> dict[str, Any]:
    """One key of the hierarchy as `keys --json` gives it; `source` says where its FC comes from."""
    head = f"keys.derivations.{d.spec.name}"
    return {
        "name": d.spec.name,
        "label": d.spec.label,
        "fc": f"0x{d.spec.fc:02x}",
        "key": d.key_name,
        "inputs": [{"name": name, "value": value.hex()} for name, value in d.inputs],
        "output": f"{d.spec.take} {d.spec.out_bits} bits",
        "value": d.value.hex(),
        "binding_dependent": dependent,
        "source": binding.param(f"{head}.fc").source,
    }


def render(key_table: KeyTable, console: Any) -> None:
    """The MILENAGE outputs and the key hierarchy as rich tables; keys marked * rest on an assumed value."""
    from rich.table import Table

    table = Table(title="MILENAGE (TS 35.206) and AUTN", title_justify="left")
    table.add_column("output")
    table.add_column("value", overflow="fold")
    for name, value in key_table.aka.items():
        table.add_row(name, value.hex())
    if key_table.key_id is not None:
        table.add_row("key_id", key_table.key_id.hex())
    console.print(table)

    table = Table(
        title=f"Key hierarchy (key agreement: {key_table.key_agreement}; * = rests on an assumed binding value)",
        title_justify="left",
    )
    for column in ("key", "FC", "KDF key", "P0..Pn", "value"):
        table.add_column(column, overflow="fold")
    for entry in key_table.hierarchy:
        params = "\n".join(_show_input(p["name"], bytes.fromhex(p["value"])) for p in entry["inputs"])
        mark = "*" if entry["binding_dependent"] else ""
        table.add_row(f"{entry['label']}{mark}", entry["fc"], entry["key"], params, entry["value"])
    console.print(table)
    for name, reason in key_table.not_derived.items():
        console.print(f"[dim]not derived: {name}: {reason}[/dim]")


def _show_input(name: str, value: bytes) -> str:
    """A KDF input as a person compares it with a trace: text in quotes when it is text, else hex."""
    if name.startswith(("hex:", "utf8:")):
        return name
    text = value.decode("ascii", "replace")
    shown = f'"{text}"' if value and text.isprintable() else value.hex()
    return f"{name}={shown}"
