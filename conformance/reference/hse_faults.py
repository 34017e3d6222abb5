"""What each HSE fault of the catalogue changes in the reference HSE, and where: the code side of faults.yaml.

The reference HSE (reference/hse.py) never tests a fault name. It builds its HseBehaviour once, from its faults
(`hse_behaviour`), and consults it at each decision point. HseBehaviour() is the conformant HSE; FAULTS maps every
HSE fault of the catalogue to the fields it overrides, with the place in hse.py that reads them. What a tester sees
of each fault is the catalogue's description (faults.yaml); what the code does is here.

No two faults override the same field, so any set of faults gives the same behaviour whatever their order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

ALGORITHM_KEYS = ("kint_enc", "kint_int", "ke2m_enc", "ke2m_int")  # the keys truncated to an algorithm's key size


@dataclass(frozen=True)
class HseBehaviour:
    """The decision points the reference HSE consults; the defaults are the conformant HSE."""

    # -- Session Request -> Session Start (on_session_request, start_session, _session_start) --------------------
    answers_session_requests: bool = True  # False: a Session Request is dropped unread
    zero_session_id: bool = False  # a new session gets Session ID 0 instead of a free one
    autn_mac_xor: int = 0  # XORed into AUTN's last octet (inside MAC-A): non-zero corrupts the MAC
    omitted_tlvs: tuple[str, ...] = ()  # Session Start TLVs left out
    reversed_tlvs: bool = False  # Session Start TLVs in reverse binding order
    unknown_tag_on_first_tlv: bool = False  # the first Session Start TLV under a tag the binding does not define
    short_length_tlvs: tuple[str, ...] = ()  # Session Start TLVs whose length field says one octet less
    session_start_command: str = "session_start"  # the command that answers a Session Request
    session_start_rfu: int = 0  # the header's reserved bit in the Session Start
    refuses_unknown_subscribers: bool = True  # False: an unknown identity is served as the PIXIT's first subscriber
    # -- sending (_transmit; HseServer._open binds the second socket) -------------------------------------------
    reply_from_other_port: bool = False  # replies leave from another UDP port than the one the UE asked
    # -- checking what the UE sends (on_control_plane, verify, on_start_confirmation, on_manage_keys_response) --
    unknown_command_reaction: str | None = None  # None: the binding's emsdp.error_reaction.unknown_command
    verifies_mac: bool = True  # a protected message's MAC is verified
    checks_replay: bool = True  # a protected message's counter must be above the last one accepted
    checks_cp_replay: bool = True  # the CP counter is checked too (checks_replay: both planes' counters)
    checks_res: bool = True  # RES must equal XRES (Start Confirmation, Manage Keys Response)
    resynchronises: bool = True  # AUTS in a Start Confirmation resynchronises the subscriber's SQN
    # -- procedures on a session (on_terminate_request) ---------------------------------------------------------
    ends_terminated_sessions: bool = True  # False: a Terminate Request is answered, and the session kept
    # True: while a Manage Keys run is pending, a Terminate Request's MAC is not verified (on_control_plane)
    terminate_mac_unchecked_while_rekeying: bool = False
    # -- AKA vectors and key derivation (SubscriberDb, _derivation_binding) -------------------------------------
    fresh_sqn: bool = True  # False: every vector reuses the subscriber's current SQN
    fresh_rand: bool = True  # False: every vector of a subscriber has the same RAND (its SQN still advances)
    new_key_id_per_agreement: bool = True  # False: KInt_EAS_PSK filed under the subscriber's first key identifier
    kint_fc_xor: int = 0  # XORed into the FC of KInt's derivation
    kint_eas_psk_key: str | None = None  # the KDF key of KInt_EAS_PSK instead of the binding's (e.g. ck_ik)
    algorithm_key_take: str | None = None  # which bits ALGORITHM_KEYS keep instead of the binding's (e.g. msb)
    eps_root: str | None = None  # the key EPS AKA roots the BEST keys in instead of the binding's KASME (e.g. ck_ik)
    eap_aka_prime_fc_of_5g_aka: bool = False  # KHSE after EAP-AKA' derived with 5G AKA's FC (0x63), not 0x64
    # -- concurrency: what shows only with sessions overlapping (start_session, echo; found by a load run) --------
    crosses_concurrent_setups: bool = False  # a new session takes the vector and keys of another session in setup
    shares_downlink_counter: bool = False  # one downlink UP counter for all sessions, set back to 0 at each setup
    # -- dying (handle, start_session; `die` logs the moment and closes or hangs the rest) ----------------------
    hangs_after_setup: bool = False  # after its first Session Start is sent, nothing is answered
    exits_on_malformed: bool = False  # the first datagram that does not decode as EMSDP closes the sockets
    crashes_on_empty_ue_config: bool = False  # a Session Request whose UE config TLV is empty kills the endpoint

    def derivation_overrides(self, binding: Mapping[str, Any]) -> dict[str, Any]:
        """Binding parameters to override so the key hierarchy derives as this HSE does: a wrong derivation is a
        binding change, so the faulty HSE runs exactly the faithful code."""
        overrides: dict[str, Any] = {}
        if self.kint_fc_xor:
            overrides["keys.derivations.kint.fc"] = binding["keys.derivations.kint.fc"] ^ self.kint_fc_xor
        if self.kint_eas_psk_key is not None:
            overrides["keys.derivations.kint_eas_psk.key"] = self.kint_eas_psk_key
        if self.algorithm_key_take is not None:
            for name in ALGORITHM_KEYS:
                overrides[f"keys.derivations.{name}.take"] = self.algorithm_key_take
        if self.eps_root is not None:
            overrides["keys.root_by_key_agreement.eps"] = self.eps_root
        if self.eap_aka_prime_fc_of_5g_aka:
            overrides["keys.derivations.khse_eap_aka_prime.fc"] = binding["keys.derivations.khse.fc"]
        return overrides

    def autn(self, autn: bytes) -> bytes:
        """The AUTN a Session Start carries."""
        return autn[:-1] + bytes([autn[-1] ^ self.autn_mac_xor]) if self.autn_mac_xor else autn

    def session_start_tlvs(self, tlvs: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        """The Session Start's (name, value) TLVs as sent: some left out, the rest maybe reversed."""
        kept = [t for t in tlvs if t[0] not in self.omitted_tlvs]
        return kept[::-1] if self.reversed_tlvs else kept

    def miscode(self, tlvs: list[tuple[str, bytes]], tags: Mapping[str, int]) -> list[tuple[int, bytes, int]]:
        """The Session Start's TLVs as (tag, value, length) with this HSE's encoding faults: an undefined tag on
        the first, a length one short on some."""
        codes = [tags[name] for name, _ in tlvs]
        if self.unknown_tag_on_first_tlv and codes:
            codes[0] = max(tags.values()) + 0x40
        short = {tags[name] for name in self.short_length_tlvs}
        return [(code, value, len(value) - (code in short)) for code, (_, value) in zip(codes, tlvs, strict=True)]


# HSE fault (faults.yaml) -> the HseBehaviour fields it overrides; the comment says where hse.py reads them.
FAULTS: dict[str, dict[str, Any]] = {
    # -- codec ---------------------------------------------------------------------------------------------------
    "rfu_bit_set": {"session_start_rfu": 1},  # _session_start: the reserved bit sent as 1
    "wrong_tlv_tag": {"unknown_tag_on_first_tlv": True},  # _session_start: RAND, first, under an undefined tag
    "wrong_tlv_length": {"short_length_tlvs": ("autn",)},  # _session_start: AUTN's length one octet short
    "tlv_order_swapped": {"reversed_tlvs": True},  # _session_start: the TLVs in reverse binding order
    # -- protocol ------------------------------------------------------------------------------------------------
    "missing_mandatory_tlv": {"omitted_tlvs": ("autn",)},  # _session_start: no AUTN TLV
    "wrong_reply_command": {"session_start_command": "manage_keys_request"},  # _session_start: the wrong command
    "no_reply": {"answers_session_requests": False},  # on_session_request: returns at once
    "reply_from_wrong_port": {"reply_from_other_port": True},  # HseServer._open, _transmit: a second socket
    "no_reject_on_unknown_command": {"unknown_command_reaction": "discard"},  # on_control_plane: dropped
    "session_id_zero": {"zero_session_id": True},  # start_session: Session ID 0
    "serves_terminated_session": {"ends_terminated_sessions": False},  # on_terminate_request: the session is kept
    # on_control_plane: a Terminate Request's MAC is not verified while a Manage Keys run is pending (fuzz finds it)
    "hse_skips_mac_on_terminate_after_manage_keys": {"terminate_mac_unchecked_while_rekeying": True},
    "answers_unknown_subscriber": {"refuses_unknown_subscribers": False},  # on_session_request: first subscriber
    # -- crypto --------------------------------------------------------------------------------------------------
    "wrong_fc": {"kint_fc_xor": 0x01},  # _derivation_binding: KInt's FC with its last bit flipped
    "wrong_kdf_key": {"kint_eas_psk_key": "ck_ik"},  # _derivation_binding: KInt_EAS_PSK keyed with CK‖IK
    "bad_autn_mac": {"autn_mac_xor": 0x01},  # _session_start: AUTN's last octet with its last bit flipped
    "stale_sqn": {"fresh_sqn": False},  # __init__: SubscriberDb(stale_sqn=True)
    "mac_not_verified": {"verifies_mac": False},  # verify: any MAC accepted
    "replay_accepted": {"checks_replay": False},  # verify: any counter accepted
    "wrong_truncation": {"algorithm_key_take": "msb"},  # _derivation_binding: algorithm keys keep their MSBs
    "res_not_checked": {"checks_res": False},  # on_start_confirmation, on_manage_keys_response: any RES
    "resync_ignored": {"resynchronises": False},  # on_start_confirmation: AUTS dropped, a new vector as stale
    "cp_replay_accepted": {"checks_cp_replay": False},  # verify: any CP counter accepted, UP counters still checked
    "static_rand": {"fresh_rand": False},  # __init__: SubscriberDb(static_rand=True)
    "key_id_reused": {"new_key_id_per_agreement": False},  # _publish_eas_key: the subscriber's first key identifier
    "eps_keys_from_ck_ik": {"eps_root": "ck_ik"},  # _derivation_binding: EPS AKA's keys rooted in CK‖IK, not KASME
    "eap_aka_prime_khse_fc_0x63": {"eap_aka_prime_fc_of_5g_aka": True},  # _derivation_binding: FC 0x63 after EAP-AKA'
    # -- concurrency (found by best-conformance load) -------------------------------------------------------------
    # start_session: a session set up while another subscriber's is in setup gets that one's vector and keys
    "hse_crossed_keys_under_concurrency": {"crosses_concurrent_setups": True},
    # start_session, echo: the downlink UP counter is one for all sessions, set back to 0 at each setup
    "hse_shared_counter_between_sessions": {"shares_downlink_counter": True},
    # -- dead ----------------------------------------------------------------------------------------------------
    "hse_hangs_after_setup": {"hangs_after_setup": True},  # start_session: die, then send the Session Start
    "hse_exits_on_malformed": {"exits_on_malformed": True},  # handle: die on a datagram that is not EMSDP
    # on_session_request: die (EMSDP only) on a UE config TLV of length 0 (fuzz finds it)
    "hse_crashes_on_empty_ue_config": {"crashes_on_empty_ue_config": True},
}

CONFORMANT = HseBehaviour()


def hse_behaviour(faults: Iterable[str]) -> HseBehaviour:
    """The behaviour of a reference HSE with these faults on; names that are not HSE faults change nothing (a
    profile's key-server faults go to the key server)."""
    overrides: dict[str, Any] = {}
    for name in sorted(set(faults) & FAULTS.keys()):
        overrides.update(FAULTS[name])
    return replace(CONFORMANT, **overrides) if overrides else CONFORMANT
