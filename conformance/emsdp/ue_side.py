"""The UE's side of EMSDP, shared by the harness's UE role and the reference UE: what a Session Request carries,
the keys a Session Start's (or Manage Keys') AKA run yields, the request checksum a Session Start is checked
against, and the concealed SUCI a UE names itself with.

One home for what both UEs compute: the role's octets are the reference's, so a fault of the reference UE is a
deliberate deviation (reference/ue_faults.py), never a second implementation drifting from the first.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from conformance.crypto.keys import KeyHierarchy, plmn_identity, serving_network_plmn
from conformance.crypto.suci import PROFILE_A, PROFILE_B, Suci, build_suci, conceal, encode_msin
from conformance.emsdp.layout import Layout
from conformance.emsdp.secure import MessageSecurity
from conformance.emsdp.values import encode_imsi, encode_serving_network, encode_ue_config

SUCI_SCHEMES = {"A": PROFILE_A, "B": PROFILE_B}


class NoSessionKeys(ValueError):
    """The UE cannot derive the root key of the key agreement the HSE chose (e.g. EPS AKA without a PLMN id)."""


def serving_network_id(encoding: str, network: str) -> bytes | None:
    """The SN id of KASME (TS 33.401 A.2) for the serving network the UE names in its Session Request, when no
    PIXIT gives it: the Serving Network TLV itself under the plmn_id encoding, else the PLMN identity of the
    serving network name's MCC and (3-digit) MNC; None if neither reads."""
    try:
        if encoding == "plmn_id":
            octets = bytes.fromhex(network)
            return octets if len(octets) == 3 else None
        return plmn_identity(*serving_network_plmn(network))
    except ValueError:
        return None


def session_request_tlvs(
    layout: Layout,
    *,
    identity: tuple[str, bytes],
    release: int,
    key_agreements: list[str],
    confidentiality: bool,
    eas_id: str,
    serving_network: str | None,
    extra: tuple[tuple[str, bytes], ...] = (),
) -> list[tuple[str, bytes]]:
    """A Session Request's TLVs in binding order: the identity ('imsi' or 'suci', its value), the UE
    configuration, the enterprise setup, the Serving Network TLV when `serving_network` names one, then `extra`."""
    tlvs = [identity, ("ue_config", encode_ue_config(layout, release, key_agreements, confidentiality))]
    tlvs.append(("enterprise_setup", eas_id.encode("utf-8")))
    if serving_network is not None:
        tlvs.append(("serving_network", encode_serving_network(layout, serving_network)))
    tlvs.extend(extra)
    return tlvs


def imsi_identity(imsi: str) -> tuple[str, bytes]:
    return ("imsi", encode_imsi(imsi))


def suci_identity(layout: Layout, imsi: str, key_id: int, public_key: bytes, profile: str) -> tuple[str, bytes]:
    """The SUCI TLV of an IMSI concealed for the home network key (`key_id`, ECIES `profile` A or B), fresh
    ephemeral key, in the binding's container (suci.format). The test subscribers' MCC/MNC split is 3 + 2."""
    mcc, mnc, msin = imsi[:3], imsi[3:5], imsi[5:]
    suci = Suci(0, mcc, mnc, "0", SUCI_SCHEMES[profile], key_id, conceal(encode_msin(msin), public_key, profile))
    value = build_suci(suci, "nas" if layout.suci_format == "nas" else "string")
    return ("suci", value if isinstance(value, bytes) else value.encode())


def session_keys(
    hierarchy: KeyHierarchy,
    *,
    rand: bytes,
    autn: bytes,
    config: Mapping[str, Any],
    ck: bytes,
    ik: bytes,
    snn: str,
    eas_id: str,
    sn_id: bytes | None,
) -> dict[str, bytes]:
    """The session keys of an AKA run (the USIM's CK and IK) as the HSE configuration announces them
    (key agreement, algorithm ids). NoSessionKeys if the key agreement's root cannot be derived."""
    inputs = {
        "rand": rand,
        "sqn_xor_ak": autn[:6],
        "snn": snn.encode("utf-8"),
        "eas_id": eas_id.encode("utf-8"),
        "enc_alg_id": bytes([config["ciphering_algorithm"]]),
        "int_alg_id": bytes([config["integrity_algorithm"]]),
    }
    if sn_id is not None:
        inputs["sn_id"] = sn_id
    agreement = config.get("key_agreement")
    derived, skipped = hierarchy.derive_all(ck=ck, ik=ik, key_agreement=agreement, inputs=inputs)
    root = hierarchy.root_by_key_agreement[agreement]
    if root in skipped:
        raise NoSessionKeys(f"the UE cannot derive {root}, the root of {agreement}: {skipped[root]}")
    return {name: d.value for name, d in derived.items()}


def request_checksum(
    binding: Mapping[str, Any], security: MessageSecurity, request: bytes, keys: Mapping[str, bytes]
) -> bytes:
    """The request checksum of a Session Request, full length: keyed with the session's CP integrity key
    (hmac-sha256) or not (sha256), as the binding says. A Session Start carries its leading octets."""
    if binding["emsdp.request_checksum.algorithm"] == "hmac-sha256":
        return hmac.digest(security.key(keys, "cp", "integrity"), request, hashlib.sha256)
    return hashlib.sha256(request).digest()


def checksum_matches(
    binding: Mapping[str, Any], security: MessageSecurity, checksum: bytes | None, request: bytes, keys: Any
) -> bool:
    """Whether a Session Start's request checksum (None: absent) covers `request` under `keys`."""
    if not checksum:
        return False
    return hmac.compare_digest(request_checksum(binding, security, request, keys)[: len(checksum)], checksum)
