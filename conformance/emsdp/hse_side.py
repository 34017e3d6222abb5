"""The HSE's side of EMSDP, shared by the reference HSE and the harness's HSE (towards a UE under test): the HSE
configuration a Session Start announces and the SN id a UE's Serving Network TLV names. The UE's side, and what
both sides compute alike (the request checksum, the session keys of an AKA run), is in `ue_side`.

One home, so that the harness's HSE and the reference cannot drift apart: a change of the binding reaches both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conformance.crypto.keys import plmn_identity, serving_network_plmn
from conformance.emsdp.layout import Layout
from conformance.emsdp.values import encode_hse_config

# The key agreement an HSE picks among those the UE offers, the subscriber is allowed and the serving network makes
# usable: the strongest first.
KEY_AGREEMENT_PREFERENCE = ("5g_aka", "eps", "umts", "eap_aka_prime")


def hse_config(
    layout: Layout, binding: Mapping[str, Any], *, service: str, mode: str, key_agreement: str, scheme: int
) -> bytes:
    """The HSE configuration TLV of a Session Start: the session's service, mode, key agreement and counter scheme,
    the binding's MAC length and algorithm ids; key-agreement-only sessions ask for a Start Confirmation."""
    return encode_hse_config(
        layout,
        service=service,
        mode=mode,
        key_agreement=key_agreement,
        counter_scheme=scheme,
        mac_bits=layout.mac_bytes * 8,
        integrity_algorithm=binding["protection.algorithm_ids.integrity"],
        ciphering_algorithm=binding["protection.algorithm_ids.ciphering"],
        flags=layout.start_confirmation_flag if service == "key_agreement_only" else 0,
    )


def sn_id(encoding: str, serving_network: bytes | None, known: Mapping[bytes, bytes]) -> bytes | None:
    """The SN id of KASME (TS 33.401 A.2) for the Serving Network TLV a UE sent: the TLV itself under the plmn_id
    encoding; under snn, the PLMN id `known` gives for that name (a PIXIT's serving_network_id), else the name's
    MCC and 3-digit MNC. None: no EPS keys can be derived."""
    if serving_network is None:
        return None
    if encoding == "plmn_id":
        return serving_network if len(serving_network) == 3 else None
    if serving_network in known:
        return known[serving_network]
    try:
        return plmn_identity(*serving_network_plmn(serving_network.decode("utf-8")))
    except (ValueError, UnicodeDecodeError):
        return None
