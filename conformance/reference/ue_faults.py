"""What each UE fault of the catalogue changes in the reference UE, and where: the code side of faults.yaml.

The reference UE (reference/ue.py) never tests a fault name. It builds its UeBehaviour once, from its faults
(`ue_behaviour`), and consults it at each decision point. UeBehaviour() is the conformant UE; FAULTS maps every UE
fault of the catalogue to the fields it overrides, with the place in ue.py that reads them. What a tester sees of
each fault is the catalogue's description (faults.yaml); what the code does is here.

No two faults override the same field, so any set of faults gives the same behaviour whatever their order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class UeBehaviour:
    """The decision points the reference UE consults; the defaults are the conformant UE."""

    # -- Session Request (request) --------------------------------------------------------------------------------
    conceals_identity: bool = True  # SUCI when the PICS claim it and the PIXIT gives a home network key
    sends_serving_network: bool = True  # the Serving Network TLV with 5G authentication or confidentiality
    request_rfu: int = 0  # the header's reserved bit in the Session Request
    request_session_id: int = 0  # the Session ID of a Session Request (0: no session yet)
    # -- the USIM and what the UE answers with it (run_usim) -------------------------------------------------------
    checks_autn_mac: bool = True  # False: a wrong MAC-A is taken as right (RES, CK, IK from RAND all the same)
    checks_sqn: bool = True  # False: an SQN out of range is taken (no AUTS)
    res_xor: int = 0  # XORed into RES's last octet
    auts_mac_xor: int = 0  # XORed into AUTS's last octet (inside MAC-S)
    # -- key derivation (_hierarchy) -------------------------------------------------------------------------------
    kint_fc_xor: int = 0  # XORed into the FC of KInt's derivation: every session key below it is wrong
    # -- downlink checks (check_downlink) ----------------------------------------------------------------------------
    verifies_mac: bool = True  # a downlink message's MAC is verified
    checks_replay: bool = True  # a downlink counter must be above the last one accepted
    checks_key_id: bool = True  # a downlink message must carry the session's Key ID
    # -- procedures (on_terminate_request, on_manage_keys_request, send_data) --------------------------------------
    answers_terminate: bool = True  # False: a Terminate Request is dropped, the session kept
    new_keys_at_once: bool = False  # Manage Keys' new keys replace the session's at once, not from the next session
    ciphers_uplink: bool = True  # False: uplink user data goes in plaintext on a confidential service
    # -- dying (on_start_session: `die` logs the moment) -------------------------------------------------------------
    hangs_after_setup: bool = False  # after its first Start Confirmation is sent, nothing is answered or sent

    def derivation_overrides(self, binding: Mapping[str, Any]) -> dict[str, Any]:
        """Binding parameters to override so the key hierarchy derives as this UE does: a wrong derivation is a
        binding change, so the faulty UE runs exactly the faithful code."""
        if not self.kint_fc_xor:
            return {}
        return {"keys.derivations.kint.fc": binding["keys.derivations.kint.fc"] ^ self.kint_fc_xor}

    def res(self, res: bytes) -> bytes:
        """The RES a Start Confirmation or Manage Keys Response carries."""
        return res[:-1] + bytes([res[-1] ^ self.res_xor]) if self.res_xor else res

    def auts(self, auts: bytes) -> bytes:
        """The AUTS a Start Confirmation or Manage Keys Response carries."""
        return auts[:-1] + bytes([auts[-1] ^ self.auts_mac_xor]) if self.auts_mac_xor else auts


# UE fault (faults.yaml) -> the UeBehaviour fields it overrides; the comment says where ue.py reads them.
FAULTS: dict[str, dict[str, Any]] = {
    # -- codec ---------------------------------------------------------------------------------------------------
    "ue_rfu_bit_set": {"request_rfu": 1},  # session_request: the reserved bit sent as 1
    # -- protocol ------------------------------------------------------------------------------------------------
    "ue_imsi_despite_suci": {"conceals_identity": False},  # session_request: the IMSI TLV
    "ue_no_serving_network": {"sends_serving_network": False},  # session_request: no Serving Network TLV
    "ue_nonzero_session_id": {"request_session_id": 1},  # session_request: Session ID 1
    "ue_ignores_terminate": {"answers_terminate": False},  # on_terminate_request: dropped
    "ue_new_keys_at_once": {"new_keys_at_once": True},  # on_manage_keys_request: session keys replaced
    # -- crypto --------------------------------------------------------------------------------------------------
    "ue_ignores_autn_mac": {"checks_autn_mac": False},  # run_usim: MAC failure taken as OK
    "ue_no_sqn_check": {"checks_sqn": False},  # run_usim: synch failure taken as OK
    "ue_wrong_res": {"res_xor": 0x01},  # run_usim: RES's last bit flipped
    "ue_wrong_auts": {"auts_mac_xor": 0x01},  # run_usim: MAC-S's last bit flipped
    "ue_wrong_kdf": {"kint_fc_xor": 0x01},  # _hierarchy: KInt's FC with its last bit flipped
    "ue_mac_not_verified": {"verifies_mac": False},  # check_downlink: any MAC accepted
    "ue_accepts_replayed_downlink": {"checks_replay": False},  # check_downlink: any counter accepted
    "ue_accepts_stale_key_id": {"checks_key_id": False},  # check_downlink: any Key ID accepted
    "ue_plaintext_when_confidential": {"ciphers_uplink": False},  # user_data: never ciphered
    # -- dead ----------------------------------------------------------------------------------------------------
    "ue_hangs_after_setup": {"hangs_after_setup": True},  # on_session_start: die after the Start Confirmation
}

CONFORMANT = UeBehaviour()


def ue_behaviour(faults: Iterable[str]) -> UeBehaviour:
    """The behaviour of a reference UE with these faults on; names that are not UE faults change nothing."""
    overrides: dict[str, Any] = {}
    for name in sorted(set(faults) & FAULTS.keys()):
        overrides.update(FAULTS[name])
    return replace(CONFORMANT, **overrides) if overrides else CONFORMANT
