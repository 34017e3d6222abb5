"""Every HSE fault of the catalogue, seen on the wire, and the faithful HSE not showing it.

Each fault has one scenario: the UE role drives a reference HSE over real UDP and the scenario says what it
saw, as one of three verdicts:
- `symptom`: what a conformance check would flag for this fault (e.g. a Session Start without AUTN);
- `faithful`: the conformant behaviour (e.g. a Session Start with every mandatory TLV);
- `neither`: something else, which fails both tests below.
The fault test runs the scenario against an HSE with only that fault on and expects `symptom`; the faithful
test runs the same scenario against the HSE without faults and expects `faithful`. The pair proves that the
observation tells the two apart. The faithful side doubles as the positive test of that behaviour (a wrong
RES gets Message Reject with cause authentication_failure, AUTS resynchronises, replays and forged MACs get
no echo).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest

from conformance.crypto.aka import AutnOutcome, sqn_bytes
from conformance.crypto.keys import key_identifier
from conformance.crypto.protect import DOWNLINK
from conformance.faults import BY_NAME, CATALOGUE
from conformance.profile import load_profile
from conformance.reference.hse import HseServer, ReferenceHse
from conformance.reference.hse_faults import FAULTS as BEHAVIOUR_TABLE
from conformance.reference.hse_faults import HseBehaviour, hse_behaviour
from conformance.roles.ue import Credentials, Ue, tlv_values

PROFILE_FILE = Path(__file__).resolve().parents[2] / "profiles" / "reference-hse.yaml"
EAS = "eas.example.com"
SILENCE = 0.3  # how long to wait for a reply that should not come
KEY_AGREEMENT_ONLY = 2  # the reference profile's subscriber offered key agreement only


PROFILE = load_profile(PROFILE_FILE)
HSE_FAULTS = [f.name for f in CATALOGUE if f.component == "hse"]


# ---- verdicts ------------------------------------------------------------------------------------------

SYMPTOM, FAITHFUL, NEITHER = "symptom", "faithful", "neither"


@dataclass(frozen=True)
class Seen:
    verdict: str
    evidence: str


def seen(*, symptom: bool, faithful: bool, evidence: str) -> Seen:
    if symptom == faithful:
        return Seen(NEITHER, evidence)
    return Seen(SYMPTOM if symptom else FAITHFUL, evidence)


SCENARIOS: dict[str, Callable[[HseServer], Seen]] = {}


def scenario(fault: str) -> Callable[[Callable[[HseServer], Seen]], Callable[[HseServer], Seen]]:
    def register(function: Callable[[HseServer], Seen]) -> Callable[[HseServer], Seen]:
        SCENARIOS[fault] = function
        return function

    return register


# ---- helpers -------------------------------------------------------------------------------------------


def ue_for(server: HseServer, subscriber: int = 0, *, sqn: bytes | None = None) -> Ue:
    sub = PROFILE.pixit.subscribers[subscriber]
    credentials = Credentials.from_subscriber(sub)
    if sqn is not None:
        credentials = Credentials(credentials.imsi, credentials.k, credentials.opc, sqn)
    return Ue(PROFILE.binding, credentials, server.address, snn=PROFILE.pixit.serving_network_name, eas_id=EAS)


def command_of(ue: Ue, packet: Any) -> str | None:
    """The CP command name of a reply, 'up' for user-plane data, None for silence."""
    if packet is None:
        return None
    if packet.plane == "up":
        return "up"
    return ue.layout.command_names().get(packet.cmd, f"unknown {packet.cmd:#04x}")


def cause_of(ue: Ue, packet: Any) -> str | None:
    """The cause of a Message Reject by name (None for anything else)."""
    if command_of(ue, packet) != "message_reject" or "cause" not in tlv_values(packet):
        return None
    return ue.layout.cause_names().get(tlv_values(packet)["cause"][0])


def request_session_start(ue: Ue) -> Any:
    """Send a Session Request; the Session Start that answers it (not yet given to the USIM)."""
    ue.session_request()
    return ue.expect("session_start")


def unknown_command_code(ue: Ue) -> int:
    return next(code for code in range(0x7F, 0x100) if code not in ue.layout.command_names())


def downlink_probe(ue: Ue) -> Any:
    """Elicit a protected downlink CP message: the Message Reject to an unknown command on the session."""
    ue.send(ue.protected(unknown_command_code(ue), []))
    return ue.receive()


def mac_verifies(ue: Ue, packet: Any) -> bool:
    return packet is not None and ue.security.verify(packet, ue.session.keys, DOWNLINK)


def eas_key(server: HseServer, ue: Ue) -> bytes | None:
    """The KInt_EAS_PSK the HSE's key server hands the EAS for this UE and its session's key id."""
    key_id = key_identifier(
        PROFILE.binding["keys.key_identifier.scheme"],
        PROFILE.binding["keys.key_identifier.bits"],
        rand=ue.session.rand,
        key=ue.session.keys.get(PROFILE.binding["keys.key_identifier.hash_of"]),
        hash_name=PROFILE.binding["keys.key_identifier.hash"],
    )
    return server.protocol.eas_keys.lookup(EAS, ue.credentials.imsi, key_id)


def eas_key_matches(server: HseServer, ue: Ue) -> bool:
    return eas_key(server, ue) == ue.session.keys["kint_eas_psk"]


def echo_of(ue: Ue, message: Any) -> bytes | None:
    """Send an UP message; the plaintext of a verified echo, or None on silence."""
    ue.send(message)
    reply = ue.receive(timeout=SILENCE)
    if reply is None:
        return None
    assert command_of(ue, reply) == "up", f"expected an echo or silence, got {ue.codec.describe(reply)}"
    return ue.check_downlink(reply)


# ---- codec faults --------------------------------------------------------------------------------------


@scenario("rfu_bit_set")
def reserved_bit_set(server: HseServer) -> Seen:
    with ue_for(server) as ue:
        start = request_session_start(ue)
    return seen(symptom=start.rfu == 1, faithful=start.rfu == 0, evidence=f"reserved bit {start.rfu}")


@scenario("wrong_tlv_tag")
def rand_under_an_unknown_tag(server: HseServer) -> Seen:
    with ue_for(server) as ue:
        start = request_session_start(ue)
    unknown = [hex(t.tag) for t in start.tlvs if t.tag_name is None]
    has_rand = "rand" in tlv_values(start)
    return seen(
        symptom=bool(unknown) and not has_rand,
        faithful=not unknown and has_rand and not start.problems,
        evidence=f"unknown tags {unknown}, RAND present: {has_rand}, problems {start.problems}",
    )


@scenario("wrong_tlv_length")
def autn_length_one_short(server: HseServer) -> Seen:
    with ue_for(server) as ue:
        start = request_session_start(ue)
        tlvs = ue.codec.describe(start)["tlvs"]
    autn = [t for t in tlvs if t["name"] == "autn"]
    autn_problems = [t["problem"] for t in autn if "problem" in t]
    return seen(
        symptom=bool(autn_problems),
        faithful=len(autn) == 1 and autn[0]["length"] == 16 and not start.problems,
        evidence=f"AUTN TLVs {autn}, problems {start.problems}",
    )


@scenario("tlv_order_swapped")
def tlvs_in_reverse_order(server: HseServer) -> Seen:
    mandatory = list(PROFILE.binding["emsdp.tlv_lists.session_start_mandatory"])
    with ue_for(server) as ue:
        start = request_session_start(ue)
    order = [t.tag_name for t in start.tlvs if t.tag_name in mandatory]
    return seen(
        symptom=sorted(order) == sorted(mandatory) and order != mandatory,
        faithful=order == mandatory,
        evidence=f"TLV order {order}, binding order {mandatory}",
    )


# ---- protocol faults -----------------------------------------------------------------------------------


@scenario("missing_mandatory_tlv")
def session_start_without_autn(server: HseServer) -> Seen:
    mandatory = PROFILE.binding["emsdp.tlv_lists.session_start_mandatory"]
    with ue_for(server) as ue:
        present = list(tlv_values(request_session_start(ue)))
    return seen(
        symptom="autn" not in present,
        faithful=all(name in present for name in mandatory),
        evidence=f"TLVs {present}",
    )


@scenario("wrong_reply_command")
def session_request_answered_with_manage_keys(server: HseServer) -> Seen:
    with ue_for(server) as ue:
        ue.session_request()
        answer = command_of(ue, ue.receive())
    return seen(
        symptom=answer == "manage_keys_request", faithful=answer == "session_start", evidence=f"answer {answer}"
    )


@scenario("no_reply")
def session_request_ignored(server: HseServer) -> Seen:
    with ue_for(server) as ue:
        ue.session_request()
        answer = command_of(ue, ue.receive(timeout=SILENCE))
    return seen(symptom=answer is None, faithful=answer == "session_start", evidence=f"answer {answer}")


@scenario("reply_from_wrong_port")
def reply_from_another_port(server: HseServer) -> Seen:
    with ue_for(server) as ue:
        request_session_start(ue)
        port = ue.received_from[1]
    return seen(
        symptom=port != server.address[1],
        faithful=port == server.address[1],
        evidence=f"reply from port {port}, HSE listens on {server.address[1]}",
    )


@scenario("no_reject_on_unknown_command")
def unknown_command_dropped(server: HseServer) -> Seen:
    with ue_for(server) as ue:
        ue.start()
        ue.send(ue.protected(unknown_command_code(ue), []))
        reply = ue.receive(timeout=SILENCE)
        answer, cause = command_of(ue, reply), cause_of(ue, reply)
    return seen(
        symptom=reply is None,
        faithful=cause == "unknown_command",
        evidence=f"answer {answer}, cause {cause}",
    )


@scenario("session_id_zero")
def session_id_zero_allocated(server: HseServer) -> Seen:
    with ue_for(server) as ue:
        session_id = request_session_start(ue).session_id
    return seen(symptom=session_id == 0, faithful=session_id != 0, evidence=f"Session ID {session_id}")


def reply_to(ue: Ue, message: Any) -> str | None:
    """Send a message; the command of what answers it ('up' for an echo, None for silence)."""
    ue.send(message)
    return command_of(ue, ue.receive(timeout=SILENCE))


@scenario("serves_terminated_session")
def terminated_session_still_served(server: HseServer) -> Seen:
    with ue_for(server) as ue:
        ue.start()
        ended = reply_to(ue, ue.protected("session_terminate_request", []))
        assert ended == "session_terminate_response", f"the Terminate Request got {ended}"
        data = reply_to(ue, ue.user_data(b"after the end"))
        again = reply_to(ue, ue.protected("session_terminate_request", []))
    return seen(
        symptom=data == "up" and again == "session_terminate_response",
        faithful=data in (None, "message_reject") and again in (None, "message_reject"),
        evidence=f"after the Terminate Response: user data got {data}, a new Terminate Request got {again}",
    )


@scenario("answers_unknown_subscriber")
def unknown_subscriber_gets_a_vector(server: HseServer) -> Seen:
    with ue_for(server) as ue:
        answer = reply_to(ue, ue.build_session_request(imsi="001019999999999"))
    return seen(
        symptom=answer == "session_start",
        faithful=answer in (None, "message_reject"),
        evidence=f"a Session Request from an unknown IMSI got {answer}",
    )


# ---- crypto faults -------------------------------------------------------------------------------------


@scenario("wrong_fc")
def kint_with_the_wrong_fc(server: HseServer) -> Seen:
    with ue_for(server) as ue:
        ue.start()
        same_eas_key = eas_key_matches(server, ue)
        probe = downlink_probe(ue)
        downlink_ok = mac_verifies(ue, probe)
    return seen(
        symptom=not same_eas_key and probe is not None and not downlink_ok,
        faithful=same_eas_key and downlink_ok,
        evidence=f"EAS key = UE's: {same_eas_key}; downlink {command_of(ue, probe)} MAC verifies: {downlink_ok}",
    )


@scenario("wrong_kdf_key")
def kint_eas_psk_keyed_with_ck_ik(server: HseServer) -> Seen:
    with ue_for(server) as ue:
        ue.start()
        same_eas_key = eas_key_matches(server, ue)
        up_ok = echo_of(ue, ue.user_data(b"reading")) == b"reading"  # check_downlink raises if the MAC fails
        cp_ok = mac_verifies(ue, downlink_probe(ue))
    return seen(
        symptom=not same_eas_key and up_ok and cp_ok,
        faithful=same_eas_key and up_ok and cp_ok,
        evidence=f"EAS key = UE's: {same_eas_key}; UP echo verified: {up_ok}; CP downlink MAC verifies: {cp_ok}",
    )


def session_on(server: HseServer, agreement: str) -> tuple[str, bool, bytes | None]:
    """A session of subscriber 0 on one key agreement, the UE in the PIXIT's serving network (its name and PLMN
    id): (the key agreement the HSE chose, the EAS key is the UE's, the verified echo of an UP message or None)."""
    credentials = Credentials.from_subscriber(PROFILE.pixit.subscribers[0])
    pixit = PROFILE.pixit
    with Ue(
        PROFILE.binding,
        credentials,
        server.address,
        snn=pixit.serving_network_name,
        sn_id=pixit.serving_network_id,
        eas_id=EAS,
    ) as ue:
        session = ue.start(key_agreements=(agreement,))
        same_eas_key = eas_key_matches(server, ue)
        return session.config["key_agreement"], same_eas_key, echo_of(ue, ue.user_data(b"rooted"))


@scenario("eps_keys_from_ck_ik")
def eps_keys_rooted_in_ck_ik(server: HseServer) -> Seen:
    agreement, same_eas_key, echo = session_on(server, "eps")
    return seen(
        symptom=agreement == "eps" and not same_eas_key and echo is None,
        faithful=agreement == "eps" and same_eas_key and echo == b"rooted",
        evidence=f"key agreement {agreement}; EAS key = UE's (from KASME): {same_eas_key}; UP echo {echo!r}",
    )


@scenario("eap_aka_prime_khse_fc_0x63")
def eap_aka_prime_khse_with_fc_0x63(server: HseServer) -> Seen:
    agreement, same_eas_key, echo = session_on(server, "eap_aka_prime")
    return seen(
        symptom=agreement == "eap_aka_prime" and not same_eas_key and echo is None,
        faithful=agreement == "eap_aka_prime" and same_eas_key and echo == b"rooted",
        evidence=f"key agreement {agreement}; EAS key = UE's (KHSE 0x64): {same_eas_key}; UP echo {echo!r}",
    )


@scenario("bad_autn_mac")
def autn_with_a_corrupted_mac(server: HseServer) -> Seen:
    with ue_for(server) as ue:
        check = ue.accept_session_start(request_session_start(ue))
    return seen(
        symptom=check.outcome is AutnOutcome.MAC_FAILURE,
        faithful=check.outcome is AutnOutcome.OK,
        evidence=f"USIM: {check.outcome.value} {check.reason}",
    )


@scenario("stale_sqn")
def second_vector_reuses_the_sqn(server: HseServer) -> Seen:
    with ue_for(server) as ue:
        ue.start()
        check = ue.accept_session_start(request_session_start(ue))
    return seen(
        symptom=check.outcome is AutnOutcome.SYNCH_FAILURE,
        faithful=check.outcome is AutnOutcome.OK,
        evidence=f"second session, USIM: {check.outcome.value} {check.reason}",
    )


@scenario("mac_not_verified")
def forged_mac_accepted(server: HseServer) -> Seen:
    with ue_for(server) as ue:
        ue.start()
        message = ue.user_data(b"forged")
        message = message.with_mac(bytes(b ^ 0xFF for b in message.mac))
        echoed = echo_of(ue, message)
    return seen(symptom=echoed == b"forged", faithful=echoed is None, evidence=f"echo of a forged MAC: {echoed!r}")


@scenario("replay_accepted")
def replay_echoed_again(server: HseServer) -> Seen:
    with ue_for(server) as ue:
        ue.start()
        message = ue.user_data(b"once")
        first = echo_of(ue, message)
        assert first == b"once", f"the original message got {first!r}"
        again = echo_of(ue, message)
    return seen(symptom=again == b"once", faithful=again is None, evidence=f"echo of the replay: {again!r}")


@scenario("wrong_truncation")
def algorithm_keys_from_the_wrong_end(server: HseServer) -> Seen:
    """The UP echo cannot show it: the HSE discards the UE's (correctly protected) UP data under its own wrong
    UP key, so no downlink UP message exists. The protected downlink CP message shows it, while KInt itself
    and so KInt_EAS_PSK are right (which tells this fault from wrong_fc)."""
    with ue_for(server) as ue:
        ue.start()
        same_eas_key = eas_key_matches(server, ue)
        echoed = echo_of(ue, ue.user_data(b"reading"))
        probe = downlink_probe(ue)
        cp_ok = mac_verifies(ue, probe)
    return seen(
        symptom=same_eas_key and echoed is None and probe is not None and not cp_ok,
        faithful=same_eas_key and echoed == b"reading" and cp_ok,
        evidence=f"EAS key = UE's: {same_eas_key}; UP echo {echoed!r}; CP downlink MAC verifies: {cp_ok}",
    )


@scenario("res_not_checked")
def wrong_res_accepted(server: HseServer) -> Seen:
    with ue_for(server, KEY_AGREEMENT_ONLY) as ue:
        check = ue.accept_session_start(request_session_start(ue))
        assert check.outcome is AutnOutcome.OK, check.reason
        ue.confirm(res=bytes(b ^ 0xFF for b in ue.session.res))
        reply = ue.receive(timeout=SILENCE)
        cause = cause_of(ue, reply)
        released = eas_key(server, ue)
        is_ue_key = released == ue.session.keys["kint_eas_psk"]
    return seen(
        symptom=cause != "authentication_failure" and is_ue_key,
        faithful=cause == "authentication_failure" and released is None,
        evidence=f"answer {command_of(ue, reply)} cause {cause}; EAS key released: {released is not None}",
    )


@scenario("resync_ignored")
def auts_ignored(server: HseServer) -> Seen:
    imsi = PROFILE.pixit.subscribers[0].imsi
    ind_bits = PROFILE.binding["aka.sqn.ind_bits"]
    ahead = server.protocol.db.by_imsi(imsi).sqn + (8 << ind_bits)  # the USIM is 8 SEQ ahead of the HSE
    with ue_for(server, sqn=sqn_bytes(ahead)) as ue:
        start = request_session_start(ue)
        first = ue.accept_session_start(start)
        assert first.outcome is AutnOutcome.SYNCH_FAILURE, f"USIM ahead should answer AUTS: {first.outcome}"
        ue.send_auts(first.auts, start.session_id)
        second = ue.accept_session_start(ue.expect("session_start"))
    return seen(
        symptom=second.outcome is AutnOutcome.SYNCH_FAILURE,
        faithful=second.outcome is AutnOutcome.OK,
        evidence=f"Session Start after AUTS, USIM: {second.outcome.value} {second.reason}",
    )


@scenario("cp_replay_accepted")
def replayed_manage_keys_request_acted_on(server: HseServer) -> Seen:
    """The UE's Manage Keys Request sent again after the renegotiation ended (an echo shows the HSE handled the
    answer); a replayed user-plane message beside it shows the user-plane counters are still checked."""
    with ue_for(server) as ue:
        ue.start()
        request = ue.send_protected("manage_keys_request", [])
        ue.answer_manage_keys(ue.expect("manage_keys_request"))
        assert echo_of(ue, ue.user_data(b"over")) == b"over"
        replayed = reply_to(ue, request)
        message = ue.user_data(b"once")
        assert echo_of(ue, message) == b"once"
        up_again = echo_of(ue, message)
    return seen(
        symptom=replayed == "manage_keys_request" and up_again is None,
        faithful=replayed is None and up_again is None,
        evidence=f"a replayed Manage Keys Request got {replayed}; a replayed UP message got {up_again!r}",
    )


@scenario("static_rand")
def every_session_has_the_same_rand(server: HseServer) -> Seen:
    with ue_for(server) as ue:
        first = ue.start().rand
        second = ue.start().rand  # the USIM accepts it: the SQN is fresh
    return seen(
        symptom=first == second,
        faithful=first != second,
        evidence=f"RANDs of two sessions in a row: {first.hex()}, {second.hex()}",
    )


@scenario("key_id_reused")
def second_key_under_the_first_key_id(server: HseServer) -> Seen:
    with ue_for(server) as ue:
        ue.start()
        first = eas_key_matches(server, ue)
        ue.start()
        second = eas_key(server, ue)
        is_ue_key = second == ue.session.keys["kint_eas_psk"]
    return seen(
        symptom=first and second is None,
        faithful=first and is_ue_key,
        evidence=f"each session's key under its own key id: first {first}, second {is_ue_key} (found: {bool(second)})",
    )


# ---- dead faults: the HSE stops serving ------------------------------------------------------------------


def answer_to_fresh_request(server: HseServer) -> str:
    """What a new UE's Session Request gets, on a socket of its own: the command answered, 'silence' (the port
    is open, nothing answers) or 'unreachable' (ICMP port unreachable: nothing listens)."""
    import socket

    with ue_for(server, 1) as fresh:
        request = bytes(fresh.build_session_request())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(server.address)
            sock.settimeout(SILENCE)
            try:
                for _ in range(2):  # an ICMP error shows on the next send
                    sock.send(request)
                    try:
                        reply = fresh.codec.decode(sock.recv(65535))
                    except TimeoutError:
                        continue
                    return command_of(fresh, reply) or "silence"
            except ConnectionRefusedError:
                return "unreachable"
    return "silence"


@scenario("hse_hangs_after_setup")
def hung_once_set_up(server: HseServer) -> Seen:
    with ue_for(server) as ue:
        ue.start()
        echoed = echo_of(ue, ue.user_data(b"still there?"))
    fresh = answer_to_fresh_request(server)
    return seen(
        symptom=echoed is None and fresh == "silence" and server.protocol.died_at is not None,
        faithful=echoed == b"still there?" and fresh == "session_start" and server.protocol.died_at is None,
        evidence=f"UP echo after the set-up {echoed!r}; a new UE's Session Request: {fresh}",
    )


@scenario("hse_exits_on_malformed")
def gone_after_a_malformed_datagram(server: HseServer) -> Seen:
    with ue_for(server) as ue:
        ue.send(b"\x00")  # one octet: not an EMSDP header
    fresh = answer_to_fresh_request(server)
    return seen(
        symptom=fresh == "unreachable" and server.protocol.died_at is not None,
        faithful=fresh == "session_start" and server.protocol.died_at is None,
        evidence=f"after a one-octet datagram, a new UE's Session Request: {fresh}",
    )


# ---- faults only fuzzing finds (faults.yaml found_by; tests/fuzz shows fuzzing finds them) -------------------


@scenario("hse_crashes_on_empty_ue_config")
def dead_after_an_empty_ue_config(server: HseServer) -> Seen:
    with ue_for(server, 1) as ue:
        request = ue.build_session_request()
        tlvs = [(t.tag, b"" if t.name == "ue_config" else t.value) for t in request.tlvs]
        ue.send(ue.codec.cp("session_request", tlvs, key_id=0, counter=0, session_id=0))
        answer = command_of(ue, ue.receive(timeout=SILENCE))
    fresh = answer_to_fresh_request(server)
    return seen(
        symptom=fresh == "silence" and server.protocol.died_at is not None,
        faithful=answer == "message_reject" and fresh == "session_start" and server.protocol.died_at is None,
        evidence=f"an empty UE config got {answer}; then a new UE's Session Request: {fresh}",
    )


@scenario("hse_skips_mac_on_terminate_after_manage_keys")
def forged_terminate_accepted_while_rekeying(server: HseServer) -> Seen:
    with ue_for(server) as ue:
        ue.start()
        forged = ue.protected("session_terminate_request", [])
        before = reply_to(ue, forged.with_mac(bytes([forged.mac[0] ^ 1]) + forged.mac[1:]))
        ue.send_protected("manage_keys_request", [])
        ue.expect("manage_keys_request")
        forged = ue.protected("session_terminate_request", [])
        during = reply_to(ue, forged.with_mac(bytes([forged.mac[0] ^ 1]) + forged.mac[1:]))
    return seen(
        symptom=before in (None, "message_reject") and during == "session_terminate_response",
        faithful=before in (None, "message_reject") and during in (None, "message_reject"),
        evidence=f"a forged Terminate Request got {before}; with Manage Keys pending, {during}",
    )


# ---- faults only a load run finds (faults.yaml found_by: [load]; tests/load shows a short load run finds them) --


@scenario("hse_crossed_keys_under_concurrency")
def second_of_two_setups_gets_the_first_ones_vector(server: HseServer) -> Seen:
    with ue_for(server, 0) as first, ue_for(server, 4) as second:
        first.session_request()  # both requests in flight at once: the HSE serves them back to back
        second.session_request()
        first_check = first.accept_session_start(first.expect("session_start"))
        second_check = second.accept_session_start(second.expect("session_start"))
    outcomes = (first_check.outcome, second_check.outcome)
    return seen(
        symptom=outcomes == (AutnOutcome.OK, AutnOutcome.MAC_FAILURE),
        faithful=outcomes == (AutnOutcome.OK, AutnOutcome.OK),
        evidence=f"two Session Requests served back to back: the USIMs say {outcomes[0].value}, {outcomes[1].value}",
    )


@scenario("hse_shared_counter_between_sessions")
def downlink_counter_falls_back_when_another_session_starts(server: HseServer) -> Seen:
    with ue_for(server, 0) as first, ue_for(server, 4) as second:
        first.start()
        first.send(first.user_data(b"one"))
        before = first.expect(None).counter
        second.start()  # another session set up between two echoes of the first
        first.send(first.user_data(b"two"))
        after = first.expect(None).counter
    return seen(
        symptom=after <= before,
        faithful=after > before,
        evidence=f"the first session's downlink counter: {before}, then after a second session's setup {after}",
    )


# ---- the tests -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faithful_hse():
    with HseServer(PROFILE, port=0) as server:
        yield server
    assert server.protocol.errors == 0


def test_every_hse_fault_of_the_catalogue_has_a_scenario():
    assert sorted(SCENARIOS) == sorted(HSE_FAULTS)


# ---- the behaviour table (reference/hse_faults.py): what each fault changes in the HSE --------------------------


def test_every_hse_fault_of_the_catalogue_has_a_behaviour_and_the_table_no_other_fault():
    assert sorted(BEHAVIOUR_TABLE) == sorted(HSE_FAULTS)


@pytest.mark.parametrize("fault", HSE_FAULTS)
def test_each_fault_changes_real_decision_points_away_from_the_conformant_hse(fault):
    decision_points = {f.name for f in fields(HseBehaviour)}
    overrides = BEHAVIOUR_TABLE[fault]
    assert overrides and set(overrides) <= decision_points, fault
    conformant = HseBehaviour()
    assert all(getattr(conformant, name) != value for name, value in overrides.items()), fault
    behaviour = hse_behaviour({fault})
    assert behaviour != conformant and all(getattr(behaviour, k) == v for k, v in overrides.items())


def test_no_two_faults_change_the_same_decision_point():
    """So any set of faults gives one behaviour, whatever the order they are listed in."""
    changed = [name for overrides in BEHAVIOUR_TABLE.values() for name in overrides]
    assert len(changed) == len(set(changed))


def test_no_fault_or_other_components_faults_give_the_conformant_hse():
    assert hse_behaviour(()) == HseBehaviour()
    others = {f.name for f in CATALOGUE if f.component != "hse"}
    assert hse_behaviour(others) == HseBehaviour()
    both = hse_behaviour({"mac_not_verified", "replay_accepted", "client_cert_not_required"})
    assert not both.verifies_mac and not both.checks_replay and both.checks_res


def test_the_hse_builds_its_behaviour_from_its_faults():
    assert ReferenceHse(PROFILE, frozenset({"res_not_checked"})).behaviour == hse_behaviour({"res_not_checked"})
    assert ReferenceHse(PROFILE).behaviour == HseBehaviour()


def test_the_session_start_transforms():
    tlvs = [("rand", b"r"), ("autn", b"a"), ("hse_config", b"h"), ("request_checksum", b"c")]
    assert HseBehaviour().session_start_tlvs(tlvs) == tlvs
    assert hse_behaviour({"missing_mandatory_tlv"}).session_start_tlvs(tlvs) == [tlvs[0], *tlvs[2:]]
    assert hse_behaviour({"tlv_order_swapped"}).session_start_tlvs(tlvs) == tlvs[::-1]
    assert HseBehaviour().autn(b"\x00\x10") == b"\x00\x10"
    assert hse_behaviour({"bad_autn_mac"}).autn(b"\x00\x10") == b"\x00\x11"
    binding = PROFILE.binding
    assert HseBehaviour().derivation_overrides(binding) == {}
    fc = hse_behaviour({"wrong_fc"}).derivation_overrides(binding)
    assert fc == {"keys.derivations.kint.fc": binding["keys.derivations.kint.fc"] ^ 0x01}
    take = hse_behaviour({"wrong_truncation"}).derivation_overrides(binding)
    assert set(take.values()) == {"msb"} and len(take) == 4


@pytest.mark.parametrize("fault", HSE_FAULTS)
def test_the_fault_shows_its_symptom_on_the_wire(fault):
    with HseServer(PROFILE, faults=frozenset({fault}), port=0) as server:
        observed = SCENARIOS[fault](server)
    assert observed.verdict == SYMPTOM, f"{fault} ({BY_NAME[fault].description}): {observed.evidence}"
    assert server.protocol.errors == 0


@pytest.mark.parametrize("fault", HSE_FAULTS)
def test_the_faithful_hse_does_not_show_the_symptom(faithful_hse, fault):
    observed = SCENARIOS[fault](faithful_hse)
    assert observed.verdict == FAITHFUL, f"faithful HSE, scenario for {fault}: {observed.evidence}"


def test_after_resynchronisation_the_session_works(faithful_hse):
    """A USIM ahead of the HSE answers AUTS; the HSE's next Session Start is accepted and the session is
    usable: confirmed, its UP data echoed, its EAS key the UE's."""
    imsi = PROFILE.pixit.subscribers[0].imsi
    ahead = faithful_hse.protocol.db.by_imsi(imsi).sqn + (8 << PROFILE.binding["aka.sqn.ind_bits"])
    with ue_for(faithful_hse, sqn=sqn_bytes(ahead)) as ue:
        start = request_session_start(ue)
        check = ue.accept_session_start(start)
        assert check.outcome is AutnOutcome.SYNCH_FAILURE
        ue.send_auts(check.auts, start.session_id)
        again = ue.expect("session_start")
        assert ue.accept_session_start(again).outcome is AutnOutcome.OK
        assert again.session_id == start.session_id and ue.session.checksum_ok
        ue.confirm()
        assert echo_of(ue, ue.user_data(b"after resync")) == b"after resync"
        assert eas_key_matches(faithful_hse, ue)
