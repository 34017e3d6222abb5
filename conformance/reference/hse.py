"""The reference HSE, UE side: an asyncio UDP server speaking EMSDP as the binding defines it.

What it does where TS 33.163 is silent is the binding's assumption, and beyond that the choices below:
- Session Request -> Session Start (RAND, AUTN, HSE configuration, request checksum) on a new Session ID with
  Key ID 1 for the keys the AKA run yields; Session Start itself carries Key ID 0 (the UE has no keys yet).
- Start Confirmation (Key ID 1, MAC) carries RES; with Key ID 0 it may carry AUTS instead, and the HSE
  resynchronises and sends a new Session Start. Key-agreement-only sessions require it (seed 003); for the
  user-plane services the first valid protected message confirms the session implicitly.
- Manage Keys: the HSE sends a Request (RAND, AUTN) after `rekey_after_up_messages` UP messages or when the
  UE asks with an empty Request; the new keys apply from the next session (seed 003), but the EAS can fetch
  the new KInt_EAS_PSK at once.
- UP data in UE-to-HSE mode is verified, deciphered (confidential service) and echoed back protected in
  the downlink; in UE-to-EAS mode it is relayed unchanged to the EAS user-plane endpoint of the profile, and
  what the EAS sends for a session is relayed unchanged to its UE (TS 33.163 6.2.1: the HSE may pass the
  user plane through unmodified).
- Errors: Message Reject with the binding's cause, or silent discard where `emsdp.error_reaction` says so.
  Whatever arrives, the server keeps serving: a datagram that breaks the handler is logged and dropped.
- Faults: the catalogue's HSE faults change what `self.behaviour` (reference/hse_faults.py: what each fault
  changes, and where) says at each decision point; no HSE fault is switched by name here.
- Dead faults: hse_hangs_after_setup stops answering anything once it has sent its first Session Start;
  hse_exits_on_malformed closes its socket (under `serve`, the process exits) on the first datagram that does
  not decode as EMSDP; hse_crashes_on_empty_ue_config stops answering EMSDP (its handler crashed; the key
  server goes on) on a Session Request whose UE config TLV is empty. Each logs the moment it died
  (`faults.log_death`); `on_death` tells the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conformance.binding import load_binding
from conformance.crypto.aka import AuthError, AuthVector
from conformance.crypto.keys import KeyHierarchy, key_identifier
from conformance.crypto.protect import DOWNLINK, UPLINK
from conformance.emsdp import hse_side
from conformance.emsdp.codec import Codec
from conformance.emsdp.secure import MessageSecurity
from conformance.emsdp.ue_side import request_checksum
from conformance.emsdp.values import decode_imsi, decode_ue_config, reject_tlvs
from conformance.faults import CATALOGUE, parse_faults
from conformance.profile import LoadedProfile
from conformance.reference.death import log_death
from conformance.reference.endpoint import EndpointThread, GuardedEndpoint
from conformance.reference.hse_faults import hse_behaviour
from conformance.reference.reactions import Reject
from conformance.reference.subscribers import SubscriberDb, SubscriberState, UnknownSubscriber

log = logging.getLogger("best-conformance.hse")

RECEIVE_BUFFER = 8 << 20  # octets of UDP receive buffer the HSE asks for (HseServer._opened)
CONCURRENT_SETUP = 0.002  # s: a session set up this recently, nothing verified from its UE since, is in setup
SESSION_KEY_ID = 1  # the key set a Session Start establishes (3-bit Key ID; 0 = no keys, TS 33.163 6.2.2)
HSE_FAULTS = frozenset(f.name for f in CATALOGUE if f.component == "hse")


@dataclass
class Session:
    id: int
    addr: tuple[str, int]
    subscriber: SubscriberState
    scheme: int
    service: str
    mode: str
    key_agreement: str
    eas_id: str
    vector: AuthVector
    keys: dict[str, bytes]
    request: bytes  # the Session Request, whose checksum every Session Start of this session carries
    snn: bytes | None  # serving network name, an input of the 5G root keys
    confirmed: bool = False
    ue_cp_counter: int = -1
    ue_up_counter: int = -1
    hse_cp_counter: int = 0
    hse_up_counter: int = 0
    up_messages: int = 0
    pending: AuthVector | None = None  # a Manage Keys run in progress
    last_activity: float = field(default_factory=time.monotonic)


class EasKeyStore:
    """KInt_EAS_PSK per (EAS id, UE id, key id), the last `past_keys_kept` per UE and EAS: what the HSE's
    EAS-facing key server hands out (TS 33.163 Annex B)."""

    def __init__(self, keep: int):
        self.keep = keep
        self._keys: dict[tuple[str, str], list[tuple[bytes, bytes]]] = {}
        self.lock = threading.Lock()

    def add(self, eas_id: str, ue_id: str, key_id: bytes, key: bytes) -> None:
        with self.lock:
            entries = self._keys.setdefault((eas_id, ue_id), [])
            entries.append((key_id, key))
            del entries[: -self.keep]

    def lookup(self, client_id: str, ue_id: str, key_id: bytes) -> bytes | None:
        with self.lock:
            return next((k for kid, k in reversed(self._keys.get((client_id, ue_id), [])) if kid == key_id), None)

    def latest(self, client_id: str, ue_id: str) -> tuple[bytes, bytes] | None:
        with self.lock:
            entries = self._keys.get((client_id, ue_id))
            return entries[-1] if entries else None


class ReferenceHse(GuardedEndpoint):
    logger = log

    def __init__(self, profile: LoadedProfile, faults: frozenset[str] = frozenset()):
        self.profile = profile
        # a profile may list key-server faults too (the service hands those to the key server): all names are
        # checked, the HSE keeps its own
        listed = parse_faults(profile.reference.faults)
        self.faults = faults | (listed & HSE_FAULTS)
        self.behaviour = hse_behaviour(self.faults)  # what the faults change, consulted at each decision point
        self.binding = profile.binding
        self.codec = Codec(self.binding)
        self.layout = self.codec.layout
        self.security = MessageSecurity(self.codec, self.binding)
        self.hierarchy = KeyHierarchy.from_binding(self._derivation_binding())
        behaviour = self.behaviour
        self.db = SubscriberDb(profile, stale_sqn=not behaviour.fresh_sqn, static_rand=not behaviour.fresh_rand)
        # the HSE's key store is the key server's: its fault past_keys_not_kept keeps only the newest key
        self.eas_keys = EasKeyStore(1 if "past_keys_not_kept" in listed else self.binding["rest.past_keys_kept"])
        self.sessions: dict[int, Session] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.alt_transport: asyncio.DatagramTransport | None = None  # reply_from_wrong_port
        self.errors = 0
        self._next_session = 1
        self.shared_up_counter = 0  # fault hse_shared_counter_between_sessions: the one downlink UP counter
        self.key_published: Callable[[str, str], None] | None = None  # (EAS id, UE id): push the new key
        eas = profile.reference.eas_user_plane
        self.eas_user_plane = (eas.host, eas.port) if eas and eas.port else None
        self.dead = False  # a dead fault took effect: nothing is answered any more
        self.died_at: float | None = None  # when (epoch s)
        self.on_death: Callable[[str], None] | None = None  # (fault): the service kills or hangs the rest

    def _derivation_binding(self) -> Any:
        """The crypto faults are wrong derivations: express them as binding changes, so the faulty HSE uses
        exactly the same code as the faithful one."""
        overrides: dict[str, Any] = dict(self.profile.profile.binding)
        overrides.update(self.behaviour.derivation_overrides(self.binding))
        return load_binding(overrides)

    # ---- transport ---------------------------------------------------------------------------------

    def send(self, message: Any, addr: tuple[str, int]) -> None:
        if not self.dead:
            self._transmit(message, addr)

    def _transmit(self, message: Any, addr: tuple[str, int]) -> None:
        raw = bytes(message)
        log.info("-> %s:%s %s", addr[0], addr[1], self.codec.summary(message))
        transport = self.alt_transport if self.behaviour.reply_from_other_port and self.alt_transport else None
        (transport or self.transport).sendto(raw, addr)  # type: ignore[union-attr]

    # ---- dispatch ----------------------------------------------------------------------------------

    def handle(self, data: bytes, addr: tuple[str, int]) -> None:
        session = next((s for s in self.sessions.values() if s.addr == addr), None)
        packet = self.codec.decode(data, session.scheme if session else None)
        session_id = getattr(packet, "session_id", None)  # None: too short to carry one
        if session_id in self.sessions:  # the session's counter scheme, if it differs
            session = self.sessions[session_id]
            if session.scheme != packet.scheme:
                packet = self.codec.decode(data, session.scheme)
        log.info("<- %s:%s %s", addr[0], addr[1], self.codec.summary(packet))
        if addr == self.eas_user_plane:
            self.from_eas(data, packet)
            return
        if self.behaviour.exits_on_malformed and (packet.plane is None or packet.problems):
            problems = "; ".join(packet.problems) or "not EMSDP"
            self.die("hse_exits_on_malformed", f"exits on {len(data)} octets from {addr[0]}:{addr[1]} ({problems})")
            return
        if packet.plane is None:
            log.info("discarded %d octets from %s: %s", len(data), addr, packet.problems)
            return
        try:
            if self.layout.field_bits["version"] and packet.version != self.layout.version_value:
                reaction = self._reaction("unsupported_version")
                raise Reject(
                    "unsupported_version", f"version {packet.version} is not {self.layout.version_value}", reaction
                )
            if packet.plane == "up":
                self.on_user_plane(packet, addr)
            else:
                self.on_control_plane(packet, addr)
        except Reject as reject:
            log.info("%s from %s: %s (%s)", reject.cause, addr, reject, reject.reaction)
            if reject.reaction == "reject":
                self.reject(packet, addr, reject.cause)

    def on_control_plane(self, packet: Any, addr: tuple[str, int]) -> None:
        names = self.layout.command_names()
        command = names.get(packet.cmd)
        if command is None:
            reaction = self.behaviour.unknown_command_reaction or self._reaction("unknown_command")
            raise Reject("unknown_command", f"unknown command {packet.cmd:#04x}", reaction)
        if (  # fault: the UE config is read before the TLVs are checked, and an empty one crashes the handler
            self.behaviour.crashes_on_empty_ue_config
            and command == "session_request"
            and any(t.name == "ue_config" and t.length == 0 for t in packet.tlvs)
        ):
            self.die("hse_crashes_on_empty_ue_config", f"a Session Request from {addr[0]}:{addr[1]}, UE config empty")
            return
        if any(p.startswith(("truncated", "short", "over-long", "undecodable")) for p in packet.problems):
            raise Reject("invalid_tlv", "; ".join(packet.problems))
        if command == "session_request":
            self.on_session_request(packet, addr)
            return
        session = self.sessions.get(packet.session_id)
        if session is None:
            raise Reject("unknown_session", f"no session {packet.session_id}", self._reaction("unknown_session"))
        if not (command == "session_start_confirmation" and packet.key_id == 0):
            unchecked = (  # fault: a Terminate Request's MAC goes unchecked while a Manage Keys run is pending
                self.behaviour.terminate_mac_unchecked_while_rekeying
                and command == "session_terminate_request"
                and session.pending is not None
            )
            self.verify(session, packet, "cp", addr, check_mac=not unchecked)
        handler = {
            "session_start_confirmation": self.on_start_confirmation,
            "manage_keys_request": self.on_manage_keys_request,
            "manage_keys_response": self.on_manage_keys_response,
            "session_terminate_request": self.on_terminate_request,
            "session_terminate_response": self.on_terminate_response,
            "message_reject": lambda s, p, a: log.info("UE rejected: %s", self.codec.describe(p)["tlvs"]),
        }.get(command)
        if handler is None:  # a command the UE does not send
            raise Reject("unknown_command", f"{command} is not expected from a UE", self._reaction("unknown_command"))
        handler(session, packet, addr)

    def _reaction(self, error_class: str) -> str:
        return self.binding[f"emsdp.error_reaction.{error_class}"]

    # ---- protection --------------------------------------------------------------------------------

    def verify(self, session: Session, packet: Any, plane: str, addr: tuple[str, int], check_mac: bool = True) -> None:
        """Key ID, MAC and counter freshness of a received protected message. Only a message that passes may
        move the session's reply address: else one forged datagram would redirect the UE's traffic."""
        if packet.key_id != SESSION_KEY_ID:
            raise Reject("invalid_mac", f"Key ID {packet.key_id} is not the session's", self._reaction("invalid_mac"))
        if check_mac and self.behaviour.verifies_mac and not self.security.verify(packet, session.keys, UPLINK):
            raise Reject("invalid_mac", "MAC does not verify", self._reaction("invalid_mac"))
        seen = session.ue_cp_counter if plane == "cp" else session.ue_up_counter
        checked = self.behaviour.checks_replay and (plane == "up" or self.behaviour.checks_cp_replay)
        if checked and packet.counter <= seen:
            raise Reject(
                "replayed_counter", f"counter {packet.counter} not above {seen}", self._reaction("replayed_counter")
            )
        if plane == "cp":
            session.ue_cp_counter = packet.counter
        else:
            session.ue_up_counter = packet.counter
        session.last_activity = time.monotonic()
        session.addr = addr
        if session.service != "key_agreement_only":
            self.confirm(session)  # the first valid protected message confirms the session implicitly

    def protected(self, session: Session, command: str, tlvs: list[tuple[str, bytes]]) -> Any:
        """A downlink CP message under the session's keys: Key ID, next HSE counter, MAC."""
        counter = session.hse_cp_counter = session.hse_cp_counter + 1
        return self.security.protected_cp(
            command,
            tlvs,
            session.keys,
            session_id=session.id,
            counter=counter,
            scheme=session.scheme,
            key_id=SESSION_KEY_ID,
            direction=DOWNLINK,
        )

    def reject(self, packet: Any, addr: tuple[str, int], cause: str) -> None:
        tlvs = reject_tlvs(self.layout, cause, getattr(packet, "cmd", None))
        session = self.sessions.get(getattr(packet, "session_id", 0))
        if session is not None and session.addr == addr:
            self.send(self.protected(session, "message_reject", tlvs), addr)
        else:
            self.send(self.codec.cp("message_reject", tlvs, key_id=0, counter=0, session_id=0), addr)

    # ---- Session Request -> Session Start ----------------------------------------------------------

    def on_session_request(self, packet: Any, addr: tuple[str, int]) -> None:
        if not self.behaviour.answers_session_requests:
            return
        if packet.session_id != 0:
            raise Reject("unknown_session", "a Session Request must carry Session ID 0")
        tlvs = {t.tag_name: t.value for t in packet.tlvs if getattr(t, "tag_name", None)}
        for needed in self.binding["emsdp.tlv_lists.session_request_mandatory"]:
            if not any(alt in tlvs for alt in needed.split("|")):
                raise Reject("missing_mandatory_tlv", f"no {needed} TLV", self._reaction("missing_mandatory_tlv"))
        try:
            ue = decode_ue_config(self.layout, tlvs["ue_config"])
            eas_id = tlvs["enterprise_setup"].decode("utf-8")
            subscriber = self.db.by_suci(tlvs["suci"]) if "suci" in tlvs else self.db.by_imsi(decode_imsi(tlvs["imsi"]))
        except UnknownSubscriber as exc:
            if self.behaviour.refuses_unknown_subscribers:
                raise Reject("unknown_subscriber", str(exc)) from None
            subscriber = self.db.first()  # fault: a "default subscriber" for any identity it does not know
        except (ValueError, UnicodeDecodeError) as exc:
            raise Reject("invalid_tlv", str(exc)) from None
        # TS 33.163 6.2.6.1.1 [C]: Serving Network is mandatory with 5G authentication or confidentiality
        if "serving_network" not in tlvs and ("5g_aka" in ue["key_agreements"] or ue["confidentiality_requested"]):
            raise Reject("missing_mandatory_tlv", "no Serving Network TLV", self._reaction("missing_mandatory_tlv"))
        if eas_id not in subscriber.config.eas_ids:
            raise Reject("unknown_eas", f"EAS {eas_id!r} not allowed for {subscriber.imsi}")
        snn = tlvs.get("serving_network")
        agreement = self._key_agreement(ue["key_agreements"], subscriber, snn)
        service = self._service(ue["confidentiality_requested"], subscriber)
        self.start_session(subscriber, addr, bytes(packet), agreement, service, eas_id, snn)

    def _key_agreement(self, offered: list[str], subscriber: SubscriberState, snn: bytes | None) -> str:
        usable = {"umts"} | ({"5g_aka", "eap_aka_prime"} if snn else set())
        if self._sn_id(snn) is not None:  # KASME needs the serving network's PLMN id (TS 33.401 A.2)
            usable |= {"eps"}
        for name in hse_side.KEY_AGREEMENT_PREFERENCE:
            if name in offered and name in subscriber.config.key_agreements and name in usable:
                return name
        raise Reject("service_not_allowed", f"no common key agreement in {offered}")

    def _service(self, confidentiality: bool, subscriber: SubscriberState) -> str:
        allowed = subscriber.config.services
        for name in (["up_confidential"] if confidentiality else []) + ["up_integrity", "key_agreement_only"]:
            if name in allowed:
                return name
        raise Reject("service_not_allowed", "no service allowed for this subscriber")

    def start_session(
        self,
        subscriber: SubscriberState,
        addr: tuple[str, int],
        request: bytes,
        agreement: str,
        service: str,
        eas_id: str,
        snn: bytes | None,
        session_id: int | None = None,
    ) -> None:
        for old in [s for s in self.sessions.values() if s.subscriber is subscriber and s.id != session_id]:
            del self.sessions[old.id]  # a new Session Request supersedes the subscriber's previous session
        vector = subscriber.next_vector()
        if session_id is None:
            session_id = 0 if self.behaviour.zero_session_id else self._allocate_session_id()
        keys = self._derive(vector, agreement, eas_id, snn)
        crossed = self._in_setup(subscriber) if self.behaviour.crosses_concurrent_setups else None
        if crossed is not None:  # fault: the vector slot still holds the other setup's vector, and its keys
            vector, keys = crossed.vector, crossed.keys
        if self.behaviour.shares_downlink_counter:  # fault: the one counter is "initialised" for this session
            self.shared_up_counter = 0
        session = Session(
            session_id,
            addr,
            subscriber,
            self.layout.default_scheme,
            service,
            subscriber.config.modes[0],
            agreement,
            eas_id,
            vector,
            keys,
            request,
            snn,
        )
        self.sessions[session_id] = session
        if service != "key_agreement_only":  # key agreement only: the EAS key waits for the confirmation
            self._publish_eas_key(session, vector, keys)
        reply = self._session_start(session)
        if self.behaviour.hangs_after_setup and not self.dead:
            # hung before the Session Start leaves, so whatever the UE and the EAS do next finds it hung: no race
            # between the Start Confirmation (this thread) and the EAS's key fetch (the key server's thread)
            self.die("hse_hangs_after_setup", f"session {session.id} set up; from now on nothing is answered")
            self._transmit(reply, addr)
            return
        self.send(reply, addr)

    def _in_setup(self, subscriber: SubscriberState) -> Session | None:
        """Another subscriber's session in setup now: its Session Start sent under CONCURRENT_SETUP s ago and
        nothing verified from its UE since (what the fault hse_crossed_keys_under_concurrency crosses with)."""
        now = time.monotonic()
        return next(
            (
                s
                for s in reversed(self.sessions.values())
                if s.subscriber is not subscriber and not s.confirmed and now - s.last_activity < CONCURRENT_SETUP
            ),
            None,
        )

    def _allocate_session_id(self) -> int:
        limit = 1 << self.layout.field_bits["session_id"]
        while self._next_session in self.sessions or self._next_session == 0:
            self._next_session = self._next_session % (limit - 1) + 1
        session_id, self._next_session = self._next_session, self._next_session % (limit - 1) + 1
        return session_id

    def _derive(self, vector: AuthVector, agreement: str, eas_id: str, snn: bytes | None) -> dict[str, bytes]:
        inputs = {
            "rand": vector.rand,
            "sqn_xor_ak": vector.sqn_xor_ak,
            "eas_id": eas_id.encode("utf-8"),
            "enc_alg_id": bytes([self.binding["protection.algorithm_ids.ciphering"]]),
            "int_alg_id": bytes([self.binding["protection.algorithm_ids.integrity"]]),
        }
        if snn is not None:
            inputs["snn"] = snn
        sn_id = self._sn_id(snn)
        if sn_id is not None:
            inputs["sn_id"] = sn_id
        derived, _ = self.hierarchy.derive_all(ck=vector.ck, ik=vector.ik, key_agreement=agreement, inputs=inputs)
        return {name: d.value for name, d in derived.items()}

    def _sn_id(self, serving_network: bytes | None) -> bytes | None:
        """The SN id of KASME for the Serving Network TLV a UE sent (emsdp.hse_side.sn_id): this HSE knows the
        PIXIT's serving_network_id for its serving_network_name."""
        pixit = self.profile.pixit
        name, known = pixit.serving_network_name.encode("utf-8"), pixit.serving_network_id
        return hse_side.sn_id(self.layout.serving_network_encoding, serving_network, {name: known} if known else {})

    def _request_checksum(self, request: bytes, keys: dict[str, bytes]) -> bytes:
        size = self.binding["emsdp.request_checksum.bytes"]
        return request_checksum(self.binding, self.security, request, keys)[:size]

    def _session_start(self, session: Session) -> Any:
        vector = session.vector
        autn = self.behaviour.autn(vector.autn)
        config = hse_side.hse_config(
            self.layout,
            self.binding,
            service=session.service,
            mode=session.mode,
            key_agreement=session.key_agreement,
            scheme=session.scheme,
        )
        checksum = self._request_checksum(session.request, session.keys)
        tlvs = [("rand", vector.rand), ("autn", autn), ("hse_config", config), ("request_checksum", checksum)]
        items = self.behaviour.miscode(self.behaviour.session_start_tlvs(tlvs), self.layout.tags)
        command = self.behaviour.session_start_command
        session.hse_cp_counter += 1
        return self.codec.cp(
            command,
            items,
            key_id=0,
            counter=session.hse_cp_counter,
            session_id=session.id,
            rfu=self.behaviour.session_start_rfu,
        )

    def _publish_eas_key(self, session: Session, vector: AuthVector, keys: dict[str, bytes]) -> None:
        kid = key_identifier(
            self.binding["keys.key_identifier.scheme"],
            self.binding["keys.key_identifier.bits"],
            rand=vector.rand,
            key=keys.get(self.binding["keys.key_identifier.hash_of"]),
            hash_name=self.binding["keys.key_identifier.hash"],
        )
        if not self.behaviour.new_key_id_per_agreement:  # fault: one key identifier per subscriber, its first
            kid = session.subscriber.first_key_id = session.subscriber.first_key_id or kid
        self.eas_keys.add(session.eas_id, session.subscriber.imsi, kid, keys["kint_eas_psk"])
        if self.key_published is not None:
            self.key_published(session.eas_id, session.subscriber.imsi)

    # ---- procedures on a session -------------------------------------------------------------------

    def on_start_confirmation(self, session: Session, packet: Any, addr: tuple[str, int]) -> None:
        tlvs = {t.tag_name: t.value for t in packet.tlvs if getattr(t, "tag_name", None)}
        if "auts" in tlvs and packet.key_id == 0:
            if self.behaviour.resynchronises:
                try:
                    session.subscriber.resynchronise(
                        session.vector.rand, tlvs["auts"], bytes.fromhex(self.binding["aka.resync_amf"])
                    )
                except AuthError as exc:
                    raise Reject("synch_failure", str(exc)) from None
                session.addr = addr  # a verified AUTS proves the sender holds the subscriber's key
            del self.sessions[session.id]
            self.start_session(
                session.subscriber,
                session.addr,
                session.request,
                session.key_agreement,
                session.service,
                session.eas_id,
                session.snn,
                session.id,
            )
            return
        if packet.key_id == 0:
            raise Reject(
                "invalid_mac", "a Start Confirmation with RES must be protected", self._reaction("invalid_mac")
            )
        res = tlvs.get("res")
        if res is None:
            raise Reject("missing_mandatory_tlv", "no RES TLV", self._reaction("missing_mandatory_tlv"))
        if res != session.vector.xres and self.behaviour.checks_res:
            del self.sessions[session.id]
            raise Reject("authentication_failure", "RES differs from XRES")
        self.confirm(session)
        if session.service == "key_agreement_only":
            self._publish_eas_key(session, session.vector, session.keys)

    def confirm(self, session: Session) -> None:
        """The session is set up (explicitly by its Start Confirmation, or implicitly)."""
        session.confirmed = True

    def die(self, fault: str, what: str) -> None:
        """A dead fault takes effect: log the moment, answer nothing from now on, and for an exit close the
        sockets as an exiting process would; `on_death` does the rest (the key server, or the process)."""
        if self.dead:
            return
        self.dead = True
        self.died_at = log_death("reference HSE", fault, what)
        if fault == "hse_exits_on_malformed":
            for transport in (self.transport, self.alt_transport):
                if transport is not None:
                    transport.close()
        if self.on_death is not None:
            self.on_death(fault)

    def on_manage_keys_request(self, session: Session, packet: Any, addr: tuple[str, int]) -> None:
        """The UE asks for new keys: the HSE runs a new AKA (its own Manage Keys Request)."""
        self.start_manage_keys(session)

    def start_manage_keys(self, session: Session) -> None:
        session.pending = session.subscriber.next_vector()
        vector = session.pending
        self.send(
            self.protected(session, "manage_keys_request", [("rand", vector.rand), ("autn", vector.autn)]), session.addr
        )

    def on_manage_keys_response(self, session: Session, packet: Any, addr: tuple[str, int]) -> None:
        pending = session.pending
        if pending is None:
            raise Reject("unknown_command", "no Manage Keys in progress")
        tlvs = {t.tag_name: t.value for t in packet.tlvs if getattr(t, "tag_name", None)}
        if "auts" in tlvs:
            try:
                session.subscriber.resynchronise(
                    pending.rand, tlvs["auts"], bytes.fromhex(self.binding["aka.resync_amf"])
                )
            except AuthError as exc:
                raise Reject("synch_failure", str(exc)) from None
            self.start_manage_keys(session)
            return
        if tlvs.get("res") != pending.xres and self.behaviour.checks_res:
            session.pending = None
            raise Reject("authentication_failure", "RES differs from XRES")
        session.pending = None
        new_keys = self._derive(pending, session.key_agreement, session.eas_id, session.snn)
        self._publish_eas_key(session, pending, new_keys)  # the session keeps its keys (seed 003: next session)

    def on_terminate_request(self, session: Session, packet: Any, addr: tuple[str, int]) -> None:
        if self.behaviour.ends_terminated_sessions:
            del self.sessions[session.id]  # gone before the UE can read the answer: nothing may still use it
        self.send(self.protected(session, "session_terminate_response", []), session.addr)

    def on_terminate_response(self, session: Session, packet: Any, addr: tuple[str, int]) -> None:
        self.sessions.pop(session.id, None)

    # ---- user plane --------------------------------------------------------------------------------

    def on_user_plane(self, packet: Any, addr: tuple[str, int]) -> None:
        session = self.sessions.get(packet.session_id)
        if session is None:
            raise Reject("unknown_session", f"no session {packet.session_id}", self._reaction("unknown_session"))
        if session.mode == "ue_to_eas":  # end to end between UE and EAS: relayed, not verified
            if self.eas_user_plane is None:
                raise Reject("service_not_allowed", "UE-to-EAS mode without an EAS user-plane endpoint", "discard")
            self.send(packet, self.eas_user_plane)
            return
        self.verify(session, packet, "up", addr)
        data = packet.data
        if session.service == "up_confidential":
            data = self.security.crypt(data, session.keys, "up", session.id, packet.counter, session.scheme, UPLINK)
        session.up_messages += 1
        self.echo(session, data)
        threshold = self.profile.reference.rekey_after_up_messages
        if threshold and session.up_messages % threshold == 0 and session.pending is None:
            self.start_manage_keys(session)

    def from_eas(self, data: bytes, packet: Any) -> None:
        """Downlink UE-to-EAS user plane: relay it unchanged to the UE of the session it names."""
        session = self.sessions.get(getattr(packet, "session_id", None))
        if session is None or session.mode != "ue_to_eas" or getattr(packet, "plane", None) != "up":
            log.info("dropped %d octets from the EAS: no UE-to-EAS session for them", len(data))
            return
        if self.dead:
            return
        self.transport.sendto(data, session.addr)  # type: ignore[union-attr]  (relayed as received)

    def echo(self, session: Session, data: bytes) -> None:
        """The reference application behind the HSE echoes every UP message back, protected downlink."""
        counter = session.hse_up_counter = session.hse_up_counter + 1
        if self.behaviour.shares_downlink_counter:  # fault: the counter of every session, not this one's
            counter = self.shared_up_counter = self.shared_up_counter + 1
        message = self.security.protected_up(
            data,
            session.keys,
            session_id=session.id,
            counter=counter,
            scheme=session.scheme,
            key_id=SESSION_KEY_ID,
            direction=DOWNLINK,
            cipher=session.service == "up_confidential",
        )
        self.send(message, session.addr)

    # ---- timers ------------------------------------------------------------------------------------

    def expire_idle(self) -> None:
        """Terminate sessions idle longer than the profile's idle_timeout (an HSE-initiated Terminate)."""
        timeout = self.profile.reference.idle_timeout
        if not timeout:
            return
        now = time.monotonic()
        for session in [s for s in self.sessions.values() if now - s.last_activity > timeout]:
            session.last_activity = now
            self.send(self.protected(session, "session_terminate_request", []), session.addr)


class HseServer(EndpointThread):
    """The reference HSE on its own event loop in a background thread: for tests, `run` and `serve`.

    It binds to the profile's HSE endpoint (port: the binding's, unless `port` says otherwise; 0 picks a free
    one); `address` says where it listens once started.
    """

    protocol: ReferenceHse

    def __init__(self, profile: LoadedProfile, faults: frozenset[str] = frozenset(), port: int | None = None):
        host, default_port = profile.hse_endpoint
        super().__init__(ReferenceHse(profile, faults), (host, default_port if port is None else port), "reference-hse")

    async def _opened(self) -> None:
        # a server of many UEs sizes its receive buffer for bursts: with the default (some 200 KB) a few hundred
        # UEs sending at once overflow it, and the drops look like an HSE that does not answer (the kernel caps
        # the size at net.core.rmem_max)
        sock = self.protocol.transport.get_extra_info("socket")  # type: ignore[union-attr]
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        if self.protocol.behaviour.reply_from_other_port:
            alt, _ = await self._loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=(self._bind[0], 0))
            self.protocol.alt_transport = alt
        self._loop.call_later(self._tick_interval, self._tick)

    def _transports(self) -> list[asyncio.BaseTransport | None]:
        return [self.protocol.transport, self.protocol.alt_transport]

    @property
    def _tick_interval(self) -> float:
        return min(1.0, (self.protocol.profile.reference.idle_timeout or 4.0) / 4)

    def _tick(self) -> None:
        self.protocol.expire_idle()
        self._loop.call_later(self._tick_interval, self._tick)
