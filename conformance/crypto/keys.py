"""The BEST and e2m key hierarchies, evaluated from the derivation table in the binding.

TS 33.163 confirms only KHSE's FC values; every other key's FC and inputs are binding data
(`keys.derivations.*`). This module evaluates whatever the binding says and records, for each key, the exact
KDF inputs it used, so a plugfest engineer can compare them byte by byte with a SUT's trace.

It reads the binding through the plain Mapping interface and imports nothing else of ours.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conformance.crypto.kdf import kdf, truncate

# KDF inputs a derivation may name in its params (besides hex:.. and utf8:.. literals).
INPUT_NAMES = {
    "snn": "serving network name (UTF-8), TS 33.501 6.1.1.4",
    "sn_id": "serving network identity, 3-octet PLMN id (TS 33.401 A.2)",
    "sqn_xor_ak": "SQN ⊕ AK, the first 6 octets of AUTN",
    "rand": "RAND",
    "eas_id": "EAS identifier (UTF-8)",
    "emse_id": "EMSE identifier (UTF-8)",
    "key_id": "key identifier",
    "third_party_key": "third party key Ka (seed 001)",
    "enc_alg_id": "ciphering algorithm identity, one octet",
    "int_alg_id": "integrity algorithm identity, one octet",
}
# Keys a derivation may be keyed with that are not themselves derivations.
ROOT_NAMES = {
    "ck_ik": "CK ‖ IK from AKA",
    "root": "the root the key agreement selects (keys.root_by_key_agreement)",
    "naf_key": "Ks_(ext/int)_NAF from GBA/AKMA (seed 001)",
}


@dataclass(frozen=True)
class KeySpec:
    """One derivation as the binding states it."""

    name: str
    label: str
    fc: int
    key: str
    params: tuple[str, ...]
    out_bits: int
    take: str


@dataclass(frozen=True)
class DerivedKey:
    """A derived key and the exact inputs that produced it."""

    spec: KeySpec
    key_name: str  # the key the KDF was keyed with, after resolving 'root'
    inputs: tuple[tuple[str, bytes], ...]  # (P-name, octets) for P0..Pn
    value: bytes


def specs_from_binding(binding: Mapping[str, Any]) -> dict[str, KeySpec]:
    """The derivation table of a binding, in file order."""
    head = "keys.derivations."
    names = dict.fromkeys(k[len(head) :].split(".")[0] for k in binding if k.startswith(head))
    return {
        n: KeySpec(
            name=n,
            label=binding[f"{head}{n}.label"],
            fc=binding[f"{head}{n}.fc"],
            key=binding[f"{head}{n}.key"],
            params=tuple(binding[f"{head}{n}.params"]),
            out_bits=binding[f"{head}{n}.out_bits"],
            take=binding[f"{head}{n}.take"],
        )
        for n in names
    }


def param_octets(param: str, inputs: Mapping[str, bytes]) -> bytes:
    """The octets of one KDF parameter: a literal, or a named input (KeyError if that input is missing)."""
    if param.startswith("hex:"):
        return bytes.fromhex(param[4:])
    if param.startswith("utf8:"):
        return param[5:].encode("utf-8")
    if param not in INPUT_NAMES:
        raise ValueError(f"unknown KDF input {param!r}; known: {', '.join(sorted(INPUT_NAMES))}")
    return inputs[param]


def derive(spec: KeySpec, key: bytes, inputs: Mapping[str, bytes], key_name: str | None = None) -> DerivedKey:
    params = tuple((p, param_octets(p, inputs)) for p in spec.params)
    value = truncate(kdf(key, spec.fc, *(v for _, v in params)), spec.out_bits, spec.take)
    return DerivedKey(spec, key_name or spec.key, params, value)


class KeyHierarchy:
    """Evaluates every derivation whose key and inputs are available; says why the others are not."""

    def __init__(self, specs: Mapping[str, KeySpec], root_by_key_agreement: Mapping[str, str]):
        self.specs = dict(specs)
        self.root_by_key_agreement = dict(root_by_key_agreement)

    @classmethod
    def from_binding(cls, binding: Mapping[str, Any]) -> KeyHierarchy:
        head = "keys.root_by_key_agreement."
        roots = {k[len(head) :]: v for k, v in binding.items() if k.startswith(head)}
        return cls(specs_from_binding(binding), roots)

    @property
    def provisioning_agreement(self) -> str:
        """The key agreement an EMKS's provisioned AKA runs are taken under (CK and IK from the HSS, seed 002):
        UMTS AKA where the binding knows it, else its first."""
        return "umts" if "umts" in self.root_by_key_agreement else next(iter(self.root_by_key_agreement))

    def derive_all(
        self,
        *,
        ck: bytes,
        ik: bytes,
        key_agreement: str,
        inputs: Mapping[str, bytes],
        naf_key: bytes | None = None,
    ) -> tuple[dict[str, DerivedKey], dict[str, str]]:
        """(derived keys by name, reasons for the ones that could not be derived), in table order."""
        if key_agreement not in self.root_by_key_agreement:
            raise ValueError(f"unknown key agreement {key_agreement!r}; known: {', '.join(self.root_by_key_agreement)}")
        root_name = self.root_by_key_agreement[key_agreement]
        derived: dict[str, DerivedKey] = {}
        skipped: dict[str, str] = {}
        available = {"ck_ik": ck + ik} | ({"naf_key": naf_key} if naf_key else {})

        def key_for(name: str) -> tuple[str, bytes | None]:
            if name == "root":
                name = root_name
            if name in available:
                return name, available[name]
            if name in self.specs:
                got = visit(name)
                return name, got.value if got else None
            return name, None

        def visit(name: str) -> DerivedKey | None:
            if name in derived or name in skipped:
                return derived.get(name)
            spec = self.specs[name]
            key_name, key = key_for(spec.key)
            missing = [p for p in spec.params if p in INPUT_NAMES and p not in inputs]
            if key is None:
                skipped[name] = f"needs {key_name}" + (f" ({skipped[key_name]})" if key_name in skipped else "")
            elif missing:
                skipped[name] = f"needs {', '.join(missing)}"
            else:
                derived[name] = derive(spec, key, inputs, key_name)
            return derived.get(name)

        for name in self.specs:
            visit(name)
        ordered = {n: derived[n] for n in self.specs if n in derived}
        return ordered, {n: skipped[n] for n in self.specs if n in skipped}


def plmn_identity(mcc: str, mnc: str) -> bytes:
    """The 3-octet PLMN identity (TS 24.008 10.5.1.13, TS 24.301 9.9.3.32), the SN id of KASME (TS 33.401 A.2):
    MCC digit 2 | MCC digit 1, MNC digit 3 (F for a two-digit MNC) | MCC digit 3, MNC digit 2 | MNC digit 1."""
    if not (len(mcc) == 3 and mcc.isdigit() and len(mnc) in (2, 3) and mnc.isdigit()):
        raise ValueError(f"a PLMN is a 3-digit MCC and a 2- or 3-digit MNC, got MCC {mcc!r} MNC {mnc!r}")
    d = [int(c) for c in mcc]
    n = [int(c) for c in mnc] + ([0xF] if len(mnc) == 2 else [])
    return bytes([d[1] << 4 | d[0], n[2] << 4 | d[2], n[1] << 4 | n[0]])


def serving_network_plmn(snn: str) -> tuple[str, str]:
    """(MCC, MNC) of a 5G serving network name, "5G:mnc<MNC>.mcc<MCC>.3gppnetwork.org" (TS 33.501 6.1.1.4,
    TS 24.501 9.12.1). The name writes every MNC with three digits (a two-digit one after a 0), so the MNC comes
    back as written: whether "001" is MNC 01 or 001 the name cannot say."""
    prefix, _, sn_id = snn.partition(":")
    labels = sn_id.split(".")
    if prefix != "5G" or len(labels) < 2 or not labels[0].startswith("mnc") or not labels[1].startswith("mcc"):
        raise ValueError(f"not a 5G serving network name (5G:mnc<MNC>.mcc<MCC>.3gppnetwork.org): {snn!r}")
    mnc, mcc = labels[0][3:], labels[1][3:]
    if not (len(mcc) == 3 and mcc.isdigit() and len(mnc) == 3 and mnc.isdigit()):
        raise ValueError(f"the serving network name's MCC and MNC are not 3 digits each: {snn!r}")
    return mcc, mnc


def key_identifier(
    scheme: str, bits: int, *, rand: bytes | None = None, key: bytes | None = None, hash_name: str = "sha256"
) -> bytes:
    """The identifier a UE presents with its key (seed 002 6.x.2.1): the `bits` least significant bits of RAND
    (scheme 'rand_lsb'), or the first `bits` of a hash over a key (scheme 'key_hash')."""
    if bits % 8:
        raise ValueError(f"key identifier length must be whole octets, got {bits} bits")
    if scheme == "rand_lsb":
        if rand is None:
            raise ValueError("scheme rand_lsb needs RAND")
        return rand[len(rand) - bits // 8 :]
    if scheme == "key_hash":
        if key is None:
            raise ValueError("scheme key_hash needs the key")
        return hashlib.new(hash_name, key).digest()[: bits // 8]
    raise ValueError(f"unknown key identifier scheme {scheme!r}")
