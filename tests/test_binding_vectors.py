"""The published binding vectors (fixtures/binding-vectors.yaml), recomputed from the binding's words alone.

The harness computes the vectors with its own crypto and codec (conformance/vectors.py); its UE role and its
reference HSE share that code, so they would agree on any misreading of the binding. This file is a second,
minimal implementation written from the binding's values and doc texts (conformance/binding/default.yaml) and
the specs they cite, on the standard library and `cryptography` only: MILENAGE (TS 35.206), the TS 33.220 B.2
KDF, the key hierarchy, COUNT, the EMSDP header and TLVs, AES-CMAC or HMAC-SHA-256, AES-CTR. It imports nothing
from conformance.crypto, conformance.emsdp or conformance.vectors (a test below checks), and reads the binding
through conformance.binding's loader only. It rebuilds every value of the fixture; the fixture's stated inputs
(subscriber, session ID, counters, directions, user data, the two keys no AKA run yields) it takes as given.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from conformance.binding import load_binding
from conformance.cli import main
from tests.kat import load_fixture

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "binding-vectors.yaml"
DOC = yaml.safe_load(FIXTURE.read_text(encoding="utf-8"))
DEFAULT = load_binding()

# What the vectors choose and say so (conformance/vectors.py): the Message Reject's cause, the one command sent
# under session keys in two directions, and the commands that are never protected (Key ID 0).
REJECT_CAUSE = "invalid_tlv"
COMMAND_OF = {"manage_keys_request_from_ue": "manage_keys_request"}
UNPROTECTED = {"session_request", "session_start"}


@dataclass(frozen=True)
class Reading:
    """How the second implementation reads the binding's words; the defaults are the words. The other values
    are the plausible misreadings the published vectors must catch."""

    count_bits: str = "as stated"  # protection.count.align: lsb = the low-order bits of COUNT, msb = the high-order
    mac_octets: str = "as stated"  # protection.mac.take: msb = the output's first mac.bits/8 octets, lsb = its last
    kdf_lengths: Literal["big", "little"] = "big"  # Li: two octets, big-endian
    take: str = "as stated"  # msb = the first out_bits/8 octets of the KDF output, lsb = the last


WORDS = Reading()


# ---- MILENAGE (TS 35.206 4.1), on AES from `cryptography` -------------------------------------------------


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _rot(x: bytes, bits: int) -> bytes:
    """Cyclic left rotation of a 128-bit value by `bits` bits."""
    n = int.from_bytes(x, "big")
    return ((n << bits | n >> (128 - bits)) & (1 << 128) - 1).to_bytes(16, "big") if bits else x


def milenage(k: bytes, opc: bytes, rand: bytes, sqn: bytes, amf: bytes) -> dict[str, bytes]:
    """f1 (MAC-A), f2 (RES), f3 (CK), f4 (IK), f5 (AK): r1..r5 = 64, 0, 32, 64, 96; c1..c5 = 0, 1, 2, 4, 8."""
    aes = Cipher(algorithms.AES(k), modes.ECB()).encryptor()
    c = [i.to_bytes(16, "big") for i in (0, 1, 2, 4, 8)]
    r = (64, 0, 32, 64, 96)
    temp = aes.update(_xor(rand, opc))
    in1 = sqn + amf + sqn + amf
    out1 = _xor(aes.update(_xor(_xor(temp, _rot(_xor(in1, opc), r[0])), c[0])), opc)
    out = {i: _xor(aes.update(_xor(_rot(_xor(temp, opc), r[i - 1]), c[i - 1])), opc) for i in (2, 3, 4)}
    return {"mac_a": out1[:8], "res": out[2][8:], "ck": out[3], "ik": out[4], "ak": out[2][:6]}


def aka(doc: dict[str, Any]) -> dict[str, bytes]:
    sub = {k: bytes.fromhex(v) for k, v in doc["subscriber"].items() if k in ("k", "opc", "rand", "sqn", "amf")}
    out = milenage(sub["k"], sub["opc"], sub["rand"], sub["sqn"], sub["amf"])
    out["sqn_xor_ak"] = _xor(sub["sqn"], out["ak"])
    out["autn"] = out["sqn_xor_ak"] + sub["amf"] + out["mac_a"]  # AUTN = SQN ⊕ AK ‖ AMF ‖ MAC-A
    return out


# ---- the TS 33.220 B.2 KDF and the key hierarchy of the binding -------------------------------------------


def kdf_s(fc: int, params: list[bytes], reading: Reading = WORDS) -> bytes:
    """S = FC ‖ P0 ‖ L0 ‖ … ‖ Pn ‖ Ln, Li the octet count of Pi in two octets."""
    return bytes([fc]) + b"".join(p + len(p).to_bytes(2, reading.kdf_lengths) for p in params)


def plmn_id(imsi: str, mnc_digits: int = 2) -> bytes:
    """The 3-octet PLMN id of TS 24.008 10.5.1.13: MCC2 MCC1 | MNC3 MCC3 | MNC2 MNC1 (MNC3 = F for 2 digits)."""
    mcc, mnc = imsi[:3], imsi[3 : 3 + mnc_digits]
    mnc3 = int(mnc[2]) if mnc_digits == 3 else 0xF
    digits = [int(mcc[1]) << 4 | int(mcc[0]), mnc3 << 4 | int(mcc[2]), int(mnc[1]) << 4 | int(mnc[0])]
    return bytes(digits)


def kdf_inputs(binding: Any, doc: dict[str, Any]) -> dict[str, bytes]:
    """The named inputs as the binding's comment above keys.derivations defines their octets."""
    sub, run = doc["subscriber"], aka(doc)
    return {
        "rand": bytes.fromhex(sub["rand"]),
        "sqn_xor_ak": run["sqn_xor_ak"],
        "snn": sub["serving_network_name"].encode("utf-8"),
        "sn_id": plmn_id(sub["imsi"]),
        "eas_id": sub["eas_id"].encode("utf-8"),
        "emse_id": sub["emse_id"].encode("utf-8"),
        "third_party_key": bytes.fromhex(doc["kdf_inputs"]["third_party_key"]),  # stated
        "enc_alg_id": bytes([binding["protection.algorithm_ids.ciphering"]]),
        "int_alg_id": bytes([binding["protection.algorithm_ids.integrity"]]),
    }


def specs(binding: Any) -> dict[str, dict[str, Any]]:
    fields = ("label", "fc", "key", "params", "out_bits", "take")
    return {n: {f: binding[f"keys.derivations.{n}.{f}"] for f in fields} for n in binding.children("keys.derivations")}


def param_octets(param: str, inputs: dict[str, bytes]) -> bytes:
    if param.startswith("hex:"):
        return bytes.fromhex(param[4:])
    if param.startswith("utf8:"):
        return param[5:].encode("utf-8")
    return inputs[param]


def keep(output: bytes, bits: int, take: str, reading: Reading) -> bytes:
    if reading.take == "swapped":
        take = {"msb": "lsb", "lsb": "msb"}[take]
    n = bits // 8
    return output[:n] if take == "msb" else output[len(output) - n :]


def hierarchy(binding: Any, doc: dict[str, Any], agreement: str, reading: Reading) -> dict[str, dict[str, Any]]:
    """Every key of the binding's table for one AKA run, as the fixture lists a key."""
    table, inputs, run = specs(binding), kdf_inputs(binding, doc), aka(doc)
    roots = {"ck_ik": run["ck"] + run["ik"], "naf_key": bytes.fromhex(doc["kdf_inputs"]["naf_key"])}  # CK first
    root = binding[f"keys.root_by_key_agreement.{agreement}"]
    keys: dict[str, dict[str, Any]] = {}

    def evaluate(name: str) -> dict[str, Any]:
        if name not in keys:
            spec = table[name]
            key_name = root if spec["key"] == "root" else spec["key"]
            key = roots[key_name] if key_name in roots else bytes.fromhex(evaluate(key_name)["value"])
            params = [(p, param_octets(p, inputs)) for p in spec["params"]]
            s = kdf_s(spec["fc"], [v for _, v in params], reading)
            output = hmac.digest(key, s, hashlib.sha256)
            keys[name] = {
                "name": name,
                "label": spec["label"],
                "fc": f"0x{spec['fc']:02x}",
                "key": key_name,
                "params": [
                    {"p": f"P{i}", "name": p, "value": v.hex(), "length": len(v).to_bytes(2, "big").hex()}
                    for i, (p, v) in enumerate(params)
                ],
                "s": s.hex(),
                "output": output.hex(),
                "take": spec["take"],
                "out_bits": spec["out_bits"],
                "value": keep(output, spec["out_bits"], spec["take"], reading).hex(),
            }
        return keys[name]

    for name in table:
        evaluate(name)
    return {name: keys[name] for name in table}


def _parents(binding: Any, name: str) -> list[str]:
    """A derivation's key chain: its KDF key, that key's KDF key, ... up to a root name."""
    table, chain = specs(binding), []
    while name in table:
        name = table[name]["key"]
        chain.append(name)
    return chain


def key_agreements(binding: Any, doc: dict[str, Any], reading: Reading) -> tuple[dict[str, Any], list[Any]]:
    """Per key agreement the keys that hang off its root (the root's chain and every key keyed with 'root'); then
    the keys no key agreement changes."""
    names = list(specs(binding))
    under_root = {n for n in names if "root" in _parents(binding, n)}
    runs, chains = {}, set()
    for agreement in binding.children("keys.root_by_key_agreement"):
        root = binding[f"keys.root_by_key_agreement.{agreement}"]
        chain = {root, *_parents(binding, root)} & set(names)
        chains |= chain
        keys = hierarchy(binding, doc, agreement, reading)
        runs[agreement] = {
            "root": root,
            "key_id": key_id(binding, doc, keys),
            "keys": [keys[n] for n in names if n in chain or n in under_root],
            "not_derived": {},
        }
    others = [keys[n] for n in names if n not in chains and n not in under_root]
    return runs, others


def key_id(binding: Any, doc: dict[str, Any], keys: dict[str, Any]) -> str:
    """keys.key_identifier: rand_lsb = the last bits/8 octets of RAND; key_hash = the first of the hash."""
    n = binding["keys.key_identifier.bits"] // 8
    if binding["keys.key_identifier.scheme"] == "rand_lsb":
        return bytes.fromhex(doc["subscriber"]["rand"])[-n:].hex()
    key = bytes.fromhex(keys[binding["keys.key_identifier.hash_of"]]["value"])
    return hashlib.new(binding["keys.key_identifier.hash"], key).digest()[:n].hex()


# ---- COUNT, the EMSDP header and TLVs, MAC and cipher ------------------------------------------------------


def counter_bits(binding: Any, plane: str, scheme: int) -> int:
    return binding[f"emsdp.counters.{plane}_bits_by_scheme"][scheme]


def count(binding: Any, plane: str, scheme: int, session_id: int, counter: int, direction: str, reading: Reading):
    """protection.count.layout: the fields, in the order listed, in the least (protection.count.align lsb) or most
    (msb) significant bits of a 64-bit big-endian integer, each most significant bit first in its width."""
    uplink = binding["protection.count.direction_uplink"]
    widths = {"session_id": binding["emsdp.header.session_id_bits"], "counter": counter_bits(binding, plane, scheme)}
    widths["direction"] = 1
    values = {
        "session_id": session_id,
        "counter": counter,
        "direction": uplink if direction == "uplink" else 1 - uplink,
    }
    bits = "".join(format(values[f], f"0{widths[f]}b") for f in binding["protection.count.layout"])
    assert all(values[f] < 1 << widths[f] for f in widths), "a stated value does not fit its width"
    align = binding["protection.count.align"]
    if reading.count_bits == "swapped":
        align = {"lsb": "msb", "msb": "lsb"}[align]
    bits = bits.rjust(64, "0") if align == "lsb" else bits.ljust(64, "0")
    return int(bits, 2).to_bytes(8, "big")


def header(binding: Any, plane: str, scheme: int, key_id: int, counter: int, session_id: int) -> bytes:
    """emsdp.header.fields: each field most significant bit first in its width, concatenated from the first
    octet's most significant bit on."""
    h = "emsdp.header"
    fields = {
        "version": (binding[f"{h}.version_value"], binding[f"{h}.version_bits"]),
        "up_cp": (1 if plane == "up" else 0, binding[f"{h}.up_cp_bits"]),
        "rfu": (0, binding[f"{h}.rfu_bits"]),
        "key_id": (key_id, binding[f"{h}.key_id_bits"]),
        "counter": (counter, counter_bits(binding, plane, scheme)),
        "session_id": (session_id, binding[f"{h}.session_id_bits"]),
    }
    bits = "".join(format(fields[f][0], f"0{fields[f][1]}b") for f in binding[f"{h}.fields"] if fields[f][1])
    assert len(bits) % 8 == 0
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def tlv(binding: Any, name: str, value: bytes) -> bytes:
    tag = binding[f"emsdp.tlv.tags.{name}"].to_bytes(binding["emsdp.tlv.tag_bytes"], "big")
    return tag + len(value).to_bytes(binding["emsdp.tlv.length_bytes"], "big") + value


def mac(binding: Any, key: bytes, data: bytes, reading: Reading) -> bytes:
    if binding["protection.mac.algorithm"] == "aes-cmac":
        c = cmac.CMAC(algorithms.AES(key))
        c.update(data)
        full = c.finalize()
    else:
        full = hmac.digest(key, data, hashlib.sha256)
    n = binding["protection.mac.bits"] // 8
    take = binding["protection.mac.take"]
    if reading.mac_octets == "swapped":
        take = {"msb": "lsb", "lsb": "msb"}[take]
    return full[:n] if take == "msb" else full[-n:]


def ctr(binding: Any, key: bytes, count_octets: bytes, data: bytes) -> bytes:
    if binding["protection.cipher.algorithm"] == "none":
        return data
    return Cipher(algorithms.AES(key), modes.CTR(count_octets + bytes(8))).encryptor().update(data)


def seal(
    binding: Any,
    keys: dict[str, bytes],
    plane: str,
    stated: dict[str, Any],
    given: dict[str, Any],
    body: bytes,
    reading: Reading,
) -> dict[str, Any]:
    """COUNT, header, body, covered octets, MAC and the whole message of a message under session keys."""
    scheme, sid, kid = stated["counter_scheme"], stated["session_id"], stated["key_id"]
    c = count(binding, plane, scheme, sid, given["counter"], given["direction"], reading)
    head = header(binding, plane, scheme, kid, given["counter"], sid)
    covered = head + body if binding["protection.mac.covers"] == "header_and_body" else body
    key_name = binding[f"protection.keys.{plane}_integrity"]
    tag = mac(binding, keys[key_name], c + covered, reading)
    present = kid != 0 or not binding["protection.mac.absent_when_key_id_zero"]
    return {
        "integrity_key": key_name,
        "count": c.hex(),
        "header": head.hex(),
        "body": body.hex(),
        "covered": covered.hex(),
        "mac": tag.hex(),
        "message": (head + body + (tag if present else b"")).hex(),
    }


def messages(binding: Any, doc: dict[str, Any], reading: Reading) -> dict[str, Any]:
    """One message per protected command and user-plane service, under the first key agreement's keys (every key
    derives here); the control plane is not ciphered (protection.cipher_control_plane is false)."""
    assert not binding["protection.cipher_control_plane"], "the vectors have no ciphered control-plane message"
    stated = doc["messages"]
    agreement = binding.children("keys.root_by_key_agreement")[0]
    keys = {n: bytes.fromhex(k["value"]) for n, k in hierarchy(binding, doc, agreement, reading).items()}
    run = aka(doc)
    values = {"rand": bytes.fromhex(doc["subscriber"]["rand"]), "autn": run["autn"], "res": run["res"]}
    values["cause"] = bytes([binding[f"emsdp.reject_causes.{REJECT_CAUSE}"]])
    cp = []
    for given in stated["control_plane"]:
        name = given["name"]
        command = COMMAND_OF.get(name, name)
        names = [item.split("|")[0] for item in binding[f"emsdp.tlv_lists.{name}_mandatory"]]
        body = bytes([binding[f"emsdp.commands.{command}"]]) + b"".join(tlv(binding, n, values[n]) for n in names)
        entry = {"name": name, "command": command, "code": f"0x{binding[f'emsdp.commands.{command}']:02x}"}
        entry |= {"direction": given["direction"], "counter": given["counter"], "ciphered": False}
        entry["tlvs"] = [
            {"name": n, "tag": f"0x{binding[f'emsdp.tlv.tags.{n}']:02x}", "value": values[n].hex()} for n in names
        ]
        cp.append(entry | seal(binding, keys, "cp", stated, given, body, reading))
    up = [user_plane(binding, keys, stated, given, reading) for given in stated["user_plane"]]
    out = {"key_agreement": agreement, "session_id": stated["session_id"], "key_id": stated["key_id"]}
    return out | {"counter_scheme": stated["counter_scheme"], "control_plane": cp, "user_plane": up, "not_computed": {}}


def user_plane(binding: Any, keys: dict[str, bytes], stated: dict[str, Any], given: dict[str, Any], reading: Reading):
    plaintext = bytes.fromhex(given["plaintext"])
    entry = {k: given[k] for k in ("name", "service", "direction", "counter", "plaintext")}
    entry["ciphered"] = ciphered = given["service"] == "up_confidential"
    body = plaintext
    if ciphered:
        c = count(
            binding, "up", stated["counter_scheme"], stated["session_id"], given["counter"], given["direction"], reading
        )
        key_name = binding["protection.keys.up_ciphering"]
        body = ctr(binding, keys[key_name], c, plaintext)
        entry |= {"ciphering_key": key_name, "initial_counter_block": (c + bytes(8)).hex(), "ciphertext": body.hex()}
    return entry | seal(binding, keys, "up", stated, given, body, reading)


def count_section(binding: Any, doc: dict[str, Any], reading: Reading) -> dict[str, Any]:
    vectors = []
    for given in doc["count"]["vectors"]:
        plane, scheme = given["plane"], given["counter_scheme"]
        stated = {k: given[k] for k in ("plane", "counter_scheme", "session_id", "counter", "direction")}
        c = count(binding, plane, scheme, given["session_id"], given["counter"], given["direction"], reading)
        vectors.append(stated | {"counter_bits": counter_bits(binding, plane, scheme), "count": c.hex()})
    layout = binding["protection.count.layout"]
    return {"layout": layout, "direction_uplink": binding["protection.count.direction_uplink"], "vectors": vectors}


def recompute(binding: Any, doc: dict[str, Any], reading: Reading = WORDS) -> dict[str, Any]:
    """The whole document from the binding's words and the document's stated inputs."""
    run = aka(doc)
    runs, others = key_agreements(binding, doc, reading)
    inputs = {k: v.hex() for k, v in kdf_inputs(binding, doc).items()} | {"naf_key": doc["kdf_inputs"]["naf_key"]}
    return {
        "format": doc["format"],
        "source": doc["source"],
        "binding_overrides": {p.key: p.value for p in binding.parameters() if p.overridden_by},
        "subscriber": doc["subscriber"],
        "aka": {k: run[k].hex() for k in ("mac_a", "res", "ck", "ik", "ak", "sqn_xor_ak", "autn")},
        "kdf_inputs": inputs,
        "key_agreements": runs,
        "other_keys": others,
        "other_keys_not_derived": {},
        "count": count_section(binding, doc, reading),
        "messages": messages(binding, doc, reading),
    }


def assert_same(expected: Any, got: Any, where: str = "") -> None:
    """Equality with the path of the first difference in the message."""
    if isinstance(expected, dict) and isinstance(got, dict):
        assert list(expected) == list(got) or set(expected) == set(got), (
            f"{where}: keys {sorted(expected)} != {sorted(got)}"
        )
        for key in expected:
            assert_same(expected[key], got[key], f"{where}.{key}")
    elif isinstance(expected, list) and isinstance(got, list):
        assert len(expected) == len(got), f"{where}: {len(expected)} items != {len(got)}"
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            assert_same(e, g, f"{where}[{i}]")
    else:
        assert expected == got, f"{where}: recomputed {expected!r}, fixture has {got!r}"


# ---- the second implementation itself against published data ----------------------------------------------


@pytest.mark.parametrize("vector", load_fixture("milenage_ts35208.yaml")["vectors"], ids=lambda v: f"set{v['set']}")
def test_second_milenage_matches_ts35208(vector):
    h = {k: bytes.fromhex(v) for k, v in vector.items() if isinstance(v, str)}
    out = milenage(h["k"], h["opc"], h["rand"], h["sqn"], h["amf"])
    assert [out[k].hex() for k in ("mac_a", "res", "ck", "ik", "ak")] == [
        vector[k] for k in ("f1", "f2", "f3", "f4", "f5")
    ]


def test_second_kdf_matches_ts33401_kasme():
    v = load_fixture("kdf_ts33220.yaml")["kasme"]
    s = kdf_s(v["fc"], [bytes.fromhex(v["sn_id"]), bytes.fromhex(v["sqn_xor_ak"])])
    assert hmac.digest(bytes.fromhex(v["ck"] + v["ik"]), s, hashlib.sha256).hex() == v["kasme"]


def test_second_implementation_imports_no_harness_crypto_or_codec():
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    banned = ("conformance.crypto", "conformance.emsdp", "conformance.vectors")
    assert not [m for m in modules if m.startswith(banned)], modules


# ---- the fixture -------------------------------------------------------------------------------------------


def test_every_vector_of_the_fixture_follows_the_binding_words():
    assert_same(recompute(DEFAULT, DOC), DOC)


def test_the_fixture_covers_every_derivation_and_protected_command():
    listed = {k["name"] for run in DOC["key_agreements"].values() for k in run["keys"]}
    listed |= {k["name"] for k in DOC["other_keys"]}
    assert listed == set(DEFAULT.children("keys.derivations"))
    assert list(DOC["key_agreements"]) == DEFAULT.children("keys.root_by_key_agreement")
    protected = set(DEFAULT.children("emsdp.commands")) - UNPROTECTED
    commands = {COMMAND_OF.get(m["name"], m["name"]) for m in DOC["messages"]["control_plane"]}
    assert commands == protected and not DOC["messages"]["not_computed"]
    assert {m["service"] for m in DOC["messages"]["user_plane"]} == {"up_integrity", "up_confidential"}
    assert {m["direction"] for m in DOC["messages"]["user_plane"]} == {"uplink", "downlink"}


def test_the_fixture_names_how_it_was_made():
    text = FIXTURE.read_text(encoding="utf-8")
    assert text.startswith("# ") and "best-conformance vectors" in text.split("\n\n")[0]
    assert "binding's words" in text.split("\n\n")[0] and "NOT 3GPP test data" in DOC["source"]


def test_the_subscriber_is_the_reference_profiles_first():
    hse = yaml.safe_load((ROOT / "profiles" / "reference-hse.yaml").read_text(encoding="utf-8"))["pixit"]
    emks = yaml.safe_load((ROOT / "profiles" / "reference-emks.yaml").read_text(encoding="utf-8"))["pixit"]
    first, sub = hse["subscribers"][0], DOC["subscriber"]
    assert {k: sub[k] for k in ("imsi", "k", "opc", "sqn", "amf")} == {
        k: first[k] for k in ("imsi", "k", "opc", "sqn", "amf")
    }
    assert sub["serving_network_name"] == hse["serving_network_name"] and sub["eas_id"] == hse["eas_id"]
    assert sub["emse_id"] == emks["emse_id"]
    if "serving_network_id" in hse:  # the profile's PLMN id of the serving network, where it states one
        assert DOC["kdf_inputs"]["sn_id"] == hse["serving_network_id"]
    assert DOC["kdf_inputs"]["sn_id"] == plmn_id(sub["imsi"]).hex()  # the IMSI's MCC 001 and two-digit MNC 01
    set1 = load_fixture("milenage_ts35208.yaml")["vectors"][0]
    assert sub["rand"] == set1["rand"] and sub["k"] == set1["k"] and sub["opc"] == set1["opc"]
    assert [DOC["aka"][k] for k in ("res", "ck", "ik", "ak")] == [set1[k] for k in ("f2", "f3", "f4", "f5")]


@pytest.mark.parametrize(
    ("misreading", "section"),
    [
        (Reading(count_bits="swapped"), "count"),
        (Reading(mac_octets="swapped"), "messages"),
        (Reading(kdf_lengths="little"), "key_agreements"),
        (Reading(take="swapped"), "key_agreements"),
    ],
    ids=["count-in-high-bits", "mac-last-octets", "kdf-lengths-little-endian", "take-swapped"],
)
def test_a_misreading_of_the_binding_disagrees_with_the_fixture(misreading, section):
    """The check above can fail: each plausible misreading of the words gives other values."""
    other = recompute(DEFAULT, DOC, misreading)
    assert other[section] != DOC[section]


def test_count_in_the_high_order_bits_gives_other_macs():
    """The issue's misreading: COUNT's fields in the high-order bits. Every COUNT and MAC differs."""
    other = recompute(DEFAULT, DOC, Reading(count_bits="swapped"))
    ours, theirs = DOC["messages"], other["messages"]
    for plane in ("control_plane", "user_plane"):
        for mine, misread in zip(ours[plane], theirs[plane], strict=True):
            assert mine["count"] != misread["count"] and mine["mac"] != misread["mac"], mine["name"]
    assert all(
        a["count"] != b["count"] for a, b in zip(DOC["count"]["vectors"], other["count"]["vectors"], strict=True)
    )


# ---- the command ------------------------------------------------------------------------------------------


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_the_command_prints_the_fixture(capsys):
    code, out, _ = run(capsys, "vectors")
    assert code == 0 and out == FIXTURE.read_text(encoding="utf-8")
    code, out, _ = run(capsys, "vectors", "--json")
    assert code == 0 and json.loads(out) == DOC


@pytest.mark.parametrize(
    "override",
    [
        "protection.mac.take: lsb\n",
        "protection.mac.covers: body\n",
        "protection:\n  count: {align: msb}\n  mac: {take: lsb}\n",
    ],
    ids=["mac-take-lsb", "mac-covers-body", "align-msb-take-lsb"],
)
def test_the_second_implementation_agrees_under_the_protection_alternatives(capsys, tmp_path, override):
    """The vectors of a binding with a non-default protection reading (what the probe searches): the harness and
    the second implementation still agree, and every MAC differs from the default's."""
    path = tmp_path / "agreement.yaml"
    path.write_text(override, encoding="utf-8")
    code, out, _ = run(capsys, "vectors", "--binding", str(path))
    doc = yaml.safe_load(out)
    assert code == 0 and doc["binding_overrides"]
    assert_same(recompute(load_binding(path), doc), doc)
    for plane in ("control_plane", "user_plane"):
        for mine, other in zip(DOC["messages"][plane], doc["messages"][plane], strict=True):
            assert mine["mac"] != other["mac"], mine["name"]


@pytest.mark.parametrize(
    ("override", "changed", "unchanged"),
    [
        ("keys:\n  derivations:\n    kint:\n      fc: 0xe0\n", "key_agreements", "count"),
        ("protection.count.layout: [counter, session_id, direction]\n", "count", "key_agreements"),
        ("protection.count.align: msb\n", "count", "key_agreements"),
        ("keys.derivations.kint_int.fc: 0x15\n", "key_agreements", "count"),
    ],
    ids=["kint-fc", "count-layout-order", "count-align-msb", "kint-int-fc"],
)
def test_a_binding_override_changes_the_vectors(capsys, tmp_path, override, changed, unchanged):
    path = tmp_path / "agreement.yaml"
    path.write_text(override, encoding="utf-8")
    code, out, _ = run(capsys, "vectors", "--binding", str(path))
    assert code == 0 and out != FIXTURE.read_text(encoding="utf-8")
    doc = yaml.safe_load(out)
    assert doc[changed] != DOC[changed] and doc[unchanged] == DOC[unchanged]
    assert doc["messages"]["control_plane"][0]["mac"] != DOC["messages"]["control_plane"][0]["mac"]
    assert len(doc["binding_overrides"]) == 1
    assert_same(recompute(load_binding(path), doc), doc)  # and the second implementation agrees under it


def test_a_bad_binding_file_is_one_line(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("transport:\n  udp_prot: 4000\n", encoding="utf-8")
    code, out, err = run(capsys, "vectors", "--binding", str(bad))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("best-conformance: error: ") and "transport.udp_prot: unknown parameter" in err
