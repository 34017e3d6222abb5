"""The fault catalogue: named, documented deviations a real implementation could plausibly have.

Its own room, below the profile (which names faults for an embedded reference) and the reference SUTs (which
switch them on by name, from the profile or the command line). `best-conformance selftest` runs the suites
against every fault: a fault no case catches is a hole in the suites.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

INTERFACES = ("emsdp", "key_server", "dtls")  # what a dead fault can kill: HSE UDP, HTTPS key server, EMSE DTLS


@dataclass(frozen=True)
class Fault:
    name: str
    component: str  # hse | keyserver | emse
    layer: str  # codec | protocol | crypto | keyserver | dead
    description: str  # what the faulty SUT does, and what a checker sees on the wire
    # The SUT's interfaces this fault kills (some of INTERFACES): a dead or crashed SUT, not a misbehaving one.
    # Such a SUT logs the moment it died (`log_death`); the selftest then requires the decision fail and no
    # negative case on a dead interface passing after that moment. Empty: the SUT stays alive.
    dead: tuple[str, ...] = ()


CATALOGUE: tuple[Fault, ...] = (
    # -- codec -------------------------------------------------------------------------------------------
    Fault("wrong_tlv_tag", "hse", "codec", "Session Start carries RAND under a tag the binding does not define"),
    Fault("wrong_tlv_length", "hse", "codec", "the AUTN TLV's length field says one octet less than it carries"),
    Fault("tlv_order_swapped", "hse", "codec", "Session Start lists its TLVs in reverse binding order"),
    # -- protocol ----------------------------------------------------------------------------------------
    Fault("missing_mandatory_tlv", "hse", "protocol", "Session Start is sent without its AUTN TLV"),
    Fault("wrong_reply_command", "hse", "protocol", "a Session Request is answered with a Manage Keys Request"),
    Fault("no_reply", "hse", "protocol", "Session Requests are silently ignored"),
    Fault("reply_from_wrong_port", "hse", "protocol", "replies come from another UDP port than the one asked"),
    Fault("no_reject_on_unknown_command", "hse", "protocol", "unknown commands are dropped, not rejected"),
    Fault("session_id_zero", "hse", "protocol", "Session Start allocates Session ID 0, the 'no session' value"),
    # -- crypto ------------------------------------------------------------------------------------------
    Fault("wrong_fc", "hse", "crypto", "KInt is derived with the wrong FC, so every key below it differs"),
    Fault("wrong_kdf_key", "hse", "crypto", "KInt_EAS_PSK is keyed with CK‖IK instead of KInt"),
    Fault("bad_autn_mac", "hse", "crypto", "AUTN carries a corrupted MAC-A"),
    Fault("stale_sqn", "hse", "crypto", "every vector reuses the subscriber's current SQN instead of a fresh one"),
    Fault("mac_not_verified", "hse", "crypto", "messages with a wrong MAC are accepted"),
    Fault("replay_accepted", "hse", "crypto", "counters are not checked: a replayed message is accepted again"),
    Fault("wrong_truncation", "hse", "crypto", "algorithm keys keep the most instead of the least significant bits"),
    Fault("res_not_checked", "hse", "crypto", "a Session Start Confirmation with a wrong RES is accepted"),
    Fault("resync_ignored", "hse", "crypto", "AUTS is ignored: the next vector is as stale as the last"),
    # -- key server --------------------------------------------------------------------------------------
    Fault("client_cert_not_required", "keyserver", "keyserver", "TLS accepts clients without a certificate"),
    Fault(
        "cert_identity_not_checked",
        "keyserver",
        "keyserver",
        "a client may register an id other than its certificate's identity",
    ),
    Fault("wrong_register_status", "keyserver", "keyserver", "registration answers 200 instead of 201 Created"),
    Fault("key_id_ignored", "keyserver", "keyserver", "a key request returns the newest key whatever key id it names"),
    Fault("past_keys_not_kept", "keyserver", "keyserver", "only the newest key per UE is kept"),
    Fault("xml_entities_expanded", "keyserver", "keyserver", "XML bodies are parsed with entity expansion"),
    Fault("session_not_deleted", "keyserver", "keyserver", "DELETE answers success but the session stays usable"),
    Fault(
        "push_for_wrong_client",
        "keyserver",
        "keyserver",
        "a pushed key is the one derived for another client identity, not the subscriber's",
    ),
    Fault("subscription_not_owned", "keyserver", "keyserver", "a subscription is taken on any client's session"),
    Fault("tls12_not_supported", "keyserver", "keyserver", "the key server accepts TLS 1.3 only"),
    Fault("tls13_not_supported", "keyserver", "keyserver", "the key server accepts TLS 1.2 only"),
    # -- EMSE (the key server's client, and the DTLS-PSK server towards the UE) ---------------------------
    Fault(
        "emse_server_cert_not_checked",
        "emse",
        "keyserver",
        "the EMSE talks to a key server whose certificate no trusted CA issued",
    ),
    Fault("emse_no_client_cert", "emse", "keyserver", "the EMSE connects to the key server without a certificate"),
    Fault(
        "emse_registers_wrong_id",
        "emse",
        "keyserver",
        "the registration names an id other than the EMSE_Id of the EMSE's certificate",
    ),
    Fault(
        "emse_key_cached",
        "emse",
        "protocol",
        "the first e2m_key fetched for a UE is reused whatever key identifier the UE names later",
    ),
    Fault(
        "emse_any_psk_identity",
        "emse",
        "crypto",
        "when no key is found for a PSK identity, the last key fetched is used instead of refusing",
    ),
    Fault("emse_never_deregisters", "emse", "protocol", "deregistration is never sent"),
    Fault("emse_old_tls", "emse", "keyserver", "the EMSE talks to its key server in TLS 1.1"),
    Fault(
        "emse_wrong_content_type",
        "emse",
        "keyserver",
        "the registration is sent as text/xml, not the binding's content type",
    ),
    Fault("emse_no_tls12", "emse", "keyserver", "the EMSE talks to its key server in TLS 1.3 only"),
    Fault("emse_no_tls13", "emse", "keyserver", "the EMSE talks to its key server in TLS 1.2 only"),
    Fault(
        "emse_uses_deleted_session",
        "emse",
        "protocol",
        "after deregistering, keys are still requested under the deleted session id",
    ),
    # -- dead and crashing SUTs: silence, a refused connection or a missing request must never pass for them --
    Fault(
        "hse_hangs_after_setup",
        "hse",
        "dead",
        "once the HSE has sent its first Session Start it hangs: the Start Confirmation and every later datagram go "
        "unanswered, and its key server accepts TCP connections but answers nothing",
        dead=("emsdp", "key_server"),
    ),
    Fault(
        "hse_exits_on_malformed",
        "hse",
        "dead",
        "the HSE process exits on the first datagram that does not decode as EMSDP (truncated, undecodable, "
        "an unknown command or tag): its UDP port (ICMP port unreachable) and its key server are gone",
        dead=("emsdp", "key_server"),
    ),
    Fault(
        "keyserver_closes_connections",
        "keyserver",
        "dead",
        "the key server accepts every TCP connection and closes it at once, before any TLS answer",
        dead=("key_server",),
    ),
    Fault(
        "emse_never_answers",
        "emse",
        "dead",
        "the EMSE's DTLS endpoint reads every datagram and answers none (its registration with the EMKS still happens)",
        dead=("dtls",),
    ),
)

BY_NAME = {f.name: f for f in CATALOGUE}


class UnknownFault(ValueError):
    pass


def parse_faults(names: Iterable[str], component: str | None = None) -> frozenset[str]:
    """Validate fault names (for one component, if given); an unknown one is named with the known ones."""
    chosen = frozenset(n.strip() for n in names if n.strip())
    known = {f.name for f in CATALOGUE if component is None or f.component == component}
    unknown = sorted(chosen - known)
    if unknown:
        raise UnknownFault(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return chosen
