"""The reference UE: an autonomous EMSDP client on a real UDP socket, the SUT of the UE suites (the harness plays
its HSE). It acts when a trigger says so (`UeClient.session`, `send_data`, `manage_keys`, `terminate`) and
answers what the HSE sends, as the binding defines it; where TS 33.163 is silent, the choices below:

- session: Session Request (Session ID 0, Key ID 0, counter 0, reserved bit 0) naming the UE by SUCI when its
  PICS claim SUCI and the PIXIT gives a home network public key for a claimed ECIES profile, else by IMSI; the
  UE configuration offers the PICS key agreements and asks confidentiality when the PICS list up_confidential;
  the Serving Network TLV goes with 5G authentication (5G AKA, EAP-AKA') or confidentiality.
- Session Start: AUTN through the USIM. MAC wrong -> Message Reject, cause mac_failure (binding reaction
  autn_mac_failure); AMF separation bit missing -> the same reaction, cause unspecified; SQN out of range ->
  Start Confirmation with Key ID 0 carrying AUTS. Else the keys the HSE configuration announces, the request
  checksum checked (a Session Start that does not cover the UE's request is dropped: it answers another), and
  a Start Confirmation (Key ID 1, RES, MAC).
- Downlink: Key ID, MAC, counter freshness, in that order; what fails gets the binding's error reaction.
  User data is deciphered on a confidential session; with PICS test_loop it goes back as uplink user data.
- Manage Keys Request: AUTN as above; Manage Keys Response with RES (or AUTS). The new keys are kept for the
  next session, the session keeps its own (seed 003). Terminate Request -> Terminate Response, session gone.
  Message Reject -> the session (or the pending request) is dropped; a reject is never answered.
- Faults: the catalogue's UE faults change what `self.behaviour` (reference/ue_faults.py) says at each decision
  point; no fault is switched by name here. ue_hangs_after_setup dies once its first Start Confirmation is sent
  (`die` logs the moment): from then on nothing is answered and the triggers send nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conformance.binding import load_binding
from conformance.crypto.aka import AutnCheck, AutnOutcome, Usim
from conformance.crypto.keys import KeyHierarchy
from conformance.crypto.milenage import Milenage
from conformance.crypto.protect import DOWNLINK, UPLINK
from conformance.emsdp.codec import Codec
from conformance.emsdp.fast import Message
from conformance.emsdp.secure import MessageSecurity
from conformance.emsdp.ue_side import (
    NoSessionKeys,
    checksum_matches,
    imsi_identity,
    serving_network_id,
    session_keys,
    session_request_tlvs,
    suci_identity,
)
from conformance.emsdp.values import decode_hse_config, reject_tlvs, tlv_values
from conformance.faults import CATALOGUE, parse_faults
from conformance.profile import LoadedProfile
from conformance.reference.death import log_death
from conformance.reference.endpoint import EndpointThread, GuardedEndpoint
from conformance.reference.reactions import Reject
from conformance.reference.ue_faults import ue_behaviour

log = logging.getLogger("best-conformance.ue")

UE_FAULTS = frozenset(f.name for f in CATALOGUE if f.component == "ue")
FIVE_G_AUTHENTICATION = ("5g_aka", "eap_aka_prime")  # the key agreements that need the Serving Network TLV
TRIGGER_TIMEOUT = 5.0  # s a trigger waits for the UE's event loop


@dataclass
class UeSession:
    """The UE's BEST session after a Session Start it accepted."""

    id: int
    scheme: int
    config: dict[str, Any]
    keys: dict[str, bytes]
    key_id: int = 1
    cp_counter: int = 0
    up_counter: int = 0
    hse_cp_seen: int = -1
    hse_up_seen: int = -1
    next_keys: dict[str, bytes] | None = None  # a Manage Keys run's, for the next session

    @property
    def confidential(self) -> bool:
        return self.config.get("service") == "up_confidential"


class ReferenceUe(GuardedEndpoint):
    """The UE's protocol machine; every method runs on the event loop (UeClient hands the triggers to it)."""

    logger = log

    def __init__(self, profile: LoadedProfile, hse: tuple[str, int], faults: frozenset[str] = frozenset()):
        self.profile = profile
        self.faults = faults | parse_faults(profile.reference.faults, "ue")
        self.behaviour = ue_behaviour(self.faults)
        self.binding = profile.binding
        self.codec = Codec(self.binding)
        self.layout = self.codec.layout
        self.security = MessageSecurity(self.codec, self.binding)
        overrides = {**profile.profile.binding, **self.behaviour.derivation_overrides(self.binding)}
        self.hierarchy = KeyHierarchy.from_binding(load_binding(overrides) if overrides else self.binding)
        subscriber = profile.pixit.subscribers[0]  # the UE's USIM
        self.imsi = subscriber.imsi
        self.milenage = (
            Milenage(subscriber.k, subscriber.opc) if subscriber.opc else Milenage.from_op(subscriber.k, subscriber.op)
        )
        self.usim = Usim.from_binding(self.milenage, self.binding, int.from_bytes(subscriber.sqn, "big"))
        pixit = profile.pixit
        self.snn, self.eas_id = pixit.serving_network_name, pixit.eas_id
        self.sn_id = pixit.serving_network_id or serving_network_id(self.layout.serving_network_encoding, self.snn)
        self.hse = hse
        self.transport: asyncio.DatagramTransport | None = None
        self.session: UeSession | None = None
        self.request: bytes | None = None  # the Session Request awaiting its Session Start
        self.pending: list[bytes] = []  # data triggered with no session: sent once the session it started is up
        self.errors = 0
        self.dead = False
        self.died_at: float | None = None
        self.on_death: Callable[[str], None] | None = None

    # ---- transport ---------------------------------------------------------------------------------

    def send(self, message: Message) -> None:
        if not self.dead:
            self._transmit(message)

    def _transmit(self, message: Message) -> None:
        log.info("-> %s:%s %s", self.hse[0], self.hse[1], self.codec.summary(message))
        self.transport.sendto(bytes(message), self.hse)  # type: ignore[union-attr]

    def _reaction(self, error_class: str) -> str:
        return self.binding[f"emsdp.error_reaction.{error_class}"]

    # ---- triggers ----------------------------------------------------------------------------------

    def start_session(self, pending: list[bytes] | None = None) -> None:
        """Trigger `session`: a Session Request; a session still open is left (the HSE supersedes it). Data
        still waiting for a session is dropped, unless `pending` is what this session is started for."""
        self.pending = pending or []
        behaviour, pics = self.behaviour, self.profile.pics
        confidentiality = "up_confidential" in pics.services
        five_g = any(k in FIVE_G_AUTHENTICATION for k in pics.key_agreements)
        tlvs = session_request_tlvs(
            self.layout,
            identity=self._identity() if behaviour.conceals_identity else imsi_identity(self.imsi),
            release=self.binding["release.ts33163"],
            key_agreements=list(pics.key_agreements),
            confidentiality=confidentiality,
            eas_id=self.eas_id,
            serving_network=self.snn if behaviour.sends_serving_network and (five_g or confidentiality) else None,
        )
        message = self.codec.cp(
            "session_request",
            tlvs,
            key_id=0,
            counter=0,
            session_id=behaviour.request_session_id,
            rfu=behaviour.request_rfu,
        )
        self.session, self.request = None, bytes(message)
        self.send(message)

    def _identity(self) -> tuple[str, bytes]:
        """SUCI for the first claimed ECIES profile the PIXIT has a home network public key for, else IMSI."""
        pics = self.profile.pics
        if "suci" in pics.identities:
            for profile in pics.suci_profiles:
                key = next((k for k in self.profile.pixit.home_network_keys if k.profile == profile), None)
                if key is not None:
                    return suci_identity(self.layout, self.imsi, key.id, key.public_key, profile)
        return imsi_identity(self.imsi)

    def send_data(self, data: bytes) -> None:
        """Trigger `send_data`: protected uplink user data (ciphered on a confidential session). With no session
        (never set up, ended, or rejected as unknown) the UE starts one and sends the data once it is up."""
        session = None if self.dead else self.session
        if session is None:
            if not self.dead:
                log.info("no BEST session for %d octets of data: starting one", len(data))
                self.start_session([*self.pending, data])
            return
        session.up_counter += 1
        self.send(
            self.security.protected_up(
                data,
                session.keys,
                session_id=session.id,
                counter=session.up_counter,
                scheme=session.scheme,
                key_id=session.key_id,
                direction=UPLINK,
                cipher=session.confidential and self.behaviour.ciphers_uplink,
            )
        )

    def ask_for_keys(self) -> None:
        """Trigger `manage_keys`: an empty Manage Keys Request (the HSE answers with one carrying RAND, AUTN)."""
        if self._open("manage_keys") is not None:
            self.send_protected("manage_keys_request", [])

    def end_session(self) -> None:
        """Trigger `terminate`: a Terminate Request; the session goes with the HSE's Terminate Response."""
        if self._open("terminate") is not None:
            self.send_protected("session_terminate_request", [])

    def _open(self, trigger: str) -> UeSession | None:
        """The session a trigger acts on; without one the trigger does nothing, as a device's would."""
        if self.session is None and not self.dead:
            log.warning("trigger %s: no BEST session, nothing sent", trigger)
        return None if self.dead else self.session

    def send_protected(self, command: str, tlvs: list[tuple[str, bytes]]) -> None:
        self.send(self.protected(command, tlvs))

    def protected(self, command: str, tlvs: list[tuple[str, bytes]]) -> Message:
        """The session's next control-plane message, counted and protected."""
        session = self.session
        assert session is not None
        session.cp_counter += 1
        return self.security.protected_cp(
            command,
            tlvs,
            session.keys,
            session_id=session.id,
            counter=session.cp_counter,
            scheme=session.scheme,
            key_id=session.key_id,
            direction=UPLINK,
        )

    # ---- dispatch ----------------------------------------------------------------------------------

    def handle(self, data: bytes, addr: tuple[str, int]) -> None:
        packet = self.codec.decode(data, self.session.scheme if self.session else None)
        log.info("<- %s:%s %s", addr[0], addr[1], self.codec.summary(packet))
        if packet.plane is None:
            log.info("discarded %d octets from %s: %s", len(data), addr, packet.problems)
            return
        try:
            if self.layout.field_bits["version"] and packet.version != self.layout.version_value:
                version = f"version {packet.version} is not {self.layout.version_value}"
                raise Reject("unsupported_version", version, self._reaction("unsupported_version"))
            if packet.plane == "up":
                self.on_user_plane(packet)
            else:
                self.on_control_plane(packet)
        except Reject as refused:
            log.info("%s: %s (%s)", refused.cause, refused, refused.reaction)
            if refused.reaction == "reject":
                self.reject(packet, refused.cause)

    def reject(self, packet: Message, cause: str) -> None:
        """A Message Reject: protected on the UE's session if the message named it, else without keys."""
        tlvs = reject_tlvs(self.layout, cause, getattr(packet, "cmd", None))
        session = self.session
        if session is not None and packet.session_id == session.id:
            self.send_protected("message_reject", tlvs)
        else:
            self.send(self.codec.cp("message_reject", tlvs, key_id=0, counter=0, session_id=packet.session_id))

    def on_control_plane(self, packet: Message) -> None:
        command = self.layout.command_names().get(packet.cmd)
        if command is None:
            raise Reject("unknown_command", f"unknown command {packet.cmd:#04x}", self._reaction("unknown_command"))
        if any(p.startswith(("truncated", "short", "over-long", "undecodable")) for p in packet.problems):
            raise Reject("invalid_tlv", "; ".join(packet.problems))
        if command == "session_start":
            self.on_session_start(packet)
            return
        if command == "message_reject":
            self.on_reject(packet)
            return
        handler = {
            "manage_keys_request": self.on_manage_keys_request,
            "session_terminate_request": self.on_terminate_request,
            "session_terminate_response": self.on_terminate_response,
        }.get(command)
        if handler is None:  # a command the HSE does not send
            raise Reject("unknown_command", f"{command} is not expected from an HSE", self._reaction("unknown_command"))
        self.check_downlink(packet)
        handler(packet)

    # ---- protection --------------------------------------------------------------------------------

    def check_downlink(self, packet: Message) -> None:
        """Session, Key ID, MAC and counter freshness of a protected downlink message, as the behaviour says."""
        session, behaviour = self.session, self.behaviour
        if session is None or packet.session_id != session.id:
            raise Reject("unknown_session", f"no session {packet.session_id}", self._reaction("unknown_session"))
        if behaviour.checks_key_id and packet.key_id != session.key_id:
            raise Reject("invalid_mac", f"Key ID {packet.key_id} is not the session's", self._reaction("invalid_mac"))
        if behaviour.verifies_mac and not self.security.verify(packet, session.keys, DOWNLINK):
            raise Reject("invalid_mac", "MAC does not verify", self._reaction("invalid_mac"))
        seen = session.hse_cp_seen if packet.plane == "cp" else session.hse_up_seen
        if behaviour.checks_replay and packet.counter <= seen:
            reason = f"counter {packet.counter} not above {seen}"
            raise Reject("replayed_counter", reason, self._reaction("replayed_counter"))
        if packet.plane == "cp":
            session.hse_cp_seen = max(seen, packet.counter)
        else:
            session.hse_up_seen = max(seen, packet.counter)

    # ---- AKA ---------------------------------------------------------------------------------------

    def run_usim(self, rand: bytes, autn: bytes, agreement: str) -> AutnCheck:
        """The USIM on RAND and AUTN; the behaviour may take a failed check as passed."""
        separation = self.binding[f"aka.amf_separation_bit.{agreement}"]
        check = self.usim.authenticate(rand, autn, require_separation_bit=separation)
        behaviour = self.behaviour
        taken = (check.outcome is AutnOutcome.MAC_FAILURE and not behaviour.checks_autn_mac) or (
            check.outcome is AutnOutcome.SYNCH_FAILURE and not behaviour.checks_sqn
        )
        if taken:
            res, ck, ik, ak = self.milenage.f2345(rand)
            return AutnCheck(AutnOutcome.OK, f"taken despite: {check.reason}", check.sqn, res, ck, ik, ak)
        return check

    def _refuse_autn(self, check: AutnCheck) -> None:
        """A MAC failure or a missing AMF separation bit: the binding's reaction to a network not authentic."""
        cause = "mac_failure" if check.outcome is AutnOutcome.MAC_FAILURE else "unspecified"
        raise Reject(cause, f"AUTN refused: {check.reason}", self._reaction("autn_mac_failure"))

    def _keys(self, rand: bytes, autn: bytes, config: dict[str, Any], check: AutnCheck) -> dict[str, bytes]:
        try:
            return session_keys(
                self.hierarchy,
                rand=rand,
                autn=autn,
                config=config,
                ck=check.ck,
                ik=check.ik,
                snn=self.snn,
                eas_id=self.eas_id,
                sn_id=self.sn_id,
            )
        except NoSessionKeys as exc:
            raise Reject("service_not_allowed", str(exc)) from None

    # ---- procedures --------------------------------------------------------------------------------

    def on_session_start(self, packet: Message) -> None:
        if self.request is None:
            raise Reject("unknown_session", "a Session Start without a Session Request", "discard")
        tlvs = tlv_values(packet)
        missing = [n for n in ("rand", "autn", "hse_config") if n not in tlvs]
        if missing:
            reason = f"Session Start without {', '.join(missing)}"
            raise Reject("missing_mandatory_tlv", reason, self._reaction("missing_mandatory_tlv"))
        try:
            config = decode_hse_config(self.layout, tlvs["hse_config"])
        except ValueError as exc:
            raise Reject("invalid_tlv", str(exc)) from None
        agreement = config.get("key_agreement")
        if agreement not in self.profile.pics.key_agreements or agreement not in self.hierarchy.root_by_key_agreement:
            raise Reject("service_not_allowed", f"key agreement {agreement!r} was not offered")
        check = self.run_usim(tlvs["rand"], tlvs["autn"], agreement)
        if check.outcome is AutnOutcome.SYNCH_FAILURE:  # the request waits for the HSE's new Session Start
            auts = [("auts", self.behaviour.auts(check.auts))]
            self.send(
                self.codec.cp("session_start_confirmation", auts, key_id=0, counter=0, session_id=packet.session_id)
            )
            return
        if check.outcome is not AutnOutcome.OK:
            self.request = None
            self._refuse_autn(check)
        keys = self._keys(tlvs["rand"], tlvs["autn"], config, check)
        if not checksum_matches(self.binding, self.security, tlvs.get("request_checksum"), self.request, keys):
            raise Reject("invalid_tlv", "the request checksum does not cover the UE's Session Request", "discard")
        scheme = config.get("counter_scheme", self.layout.default_scheme)
        self.session, self.request = UeSession(packet.session_id, scheme, config, keys), None
        confirmation = self.protected("session_start_confirmation", [("res", self.behaviour.res(check.res))])
        if self.behaviour.hangs_after_setup:  # dead before the HSE can see the confirmation: no case outruns the log
            self.die("ue_hangs_after_setup", f"session {packet.session_id} confirmed; from now on nothing is answered")
            self._transmit(confirmation)
            return
        self.send(confirmation)
        waiting, self.pending = self.pending, []
        for data in waiting:
            self.send_data(data)

    def on_reject(self, packet: Message) -> None:
        """The HSE refused: drop the session it names (a protected reject must verify) or the pending request."""
        cause = tlv_values(packet).get("cause", b"")
        try:
            if packet.key_id:
                self.check_downlink(packet)
                self.session = None
            elif self.request is not None:
                self.request = None
            else:
                raise Reject("invalid_mac", "an unprotected Message Reject on a session", "discard")
        except Reject as refused:  # a reject is never answered
            log.info("ignored a Message Reject: %s", refused)
            return
        log.info("the HSE rejected (cause %s): session dropped", cause.hex() or "none")

    def on_manage_keys_request(self, packet: Message) -> None:
        session = self.session
        assert session is not None
        tlvs = tlv_values(packet)
        if "rand" not in tlvs or "autn" not in tlvs:
            reason = "Manage Keys Request without RAND and AUTN"
            raise Reject("missing_mandatory_tlv", reason, self._reaction("missing_mandatory_tlv"))
        check = self.run_usim(tlvs["rand"], tlvs["autn"], session.config["key_agreement"])
        if check.outcome is AutnOutcome.SYNCH_FAILURE:
            self.send_protected("manage_keys_response", [("auts", self.behaviour.auts(check.auts))])
            return
        if check.outcome is not AutnOutcome.OK:
            self._refuse_autn(check)
        new_keys = self._keys(tlvs["rand"], tlvs["autn"], session.config, check)
        self.send_protected("manage_keys_response", [("res", self.behaviour.res(check.res))])
        if self.behaviour.new_keys_at_once:
            session.keys = new_keys
        else:
            session.next_keys = new_keys

    def on_terminate_request(self, packet: Message) -> None:
        if not self.behaviour.answers_terminate:
            log.info("Terminate Request dropped, session %d kept", packet.session_id)
            return
        self.send_protected("session_terminate_response", [])
        self.session = None

    def on_terminate_response(self, packet: Message) -> None:
        self.session = None

    def on_user_plane(self, packet: Message) -> None:
        self.check_downlink(packet)
        session = self.session
        assert session is not None
        data = packet.data
        if session.confidential:
            data = self.security.crypt(data, session.keys, "up", session.id, packet.counter, session.scheme, DOWNLINK)
        log.info("accepted %d octets of downlink user data", len(data))
        if self.profile.pics.test_loop:
            self.send_data(data)

    def die(self, fault: str, what: str) -> None:
        """A dead fault takes effect: log the moment; nothing is answered or sent from now on."""
        if self.dead:
            return
        self.dead = True
        self.died_at = log_death("reference UE", fault, what)
        if self.on_death is not None:
            self.on_death(fault)


def local_address(hse: tuple[str, int], port: int = 0) -> tuple[str, int]:
    """Where the UE binds: loopback towards an HSE on this host, else every interface (port 0: a free one)."""
    return ("127.0.0.1" if hse[0] in ("127.0.0.1", "localhost", "0.0.0.0", "") else "0.0.0.0", port)


class UeClient(EndpointThread):
    """The reference UE on its own event loop in a background thread: for tests, embedded runs and `serve ue`.

    The triggers (`session`, `send_data`, `manage_keys`, `terminate`) may be called from any thread; each returns
    once the UE has acted (its datagram sent, or nothing, as a device without a session does nothing).
    """

    protocol: ReferenceUe

    def __init__(
        self,
        profile: LoadedProfile,
        hse: tuple[str, int] | None = None,
        faults: frozenset[str] = frozenset(),
        *,
        port: int | None = None,
    ):
        host, hse_port = hse or profile.hse_endpoint
        self.hse = ("127.0.0.1" if host in ("0.0.0.0", "") else host, hse_port)
        super().__init__(ReferenceUe(profile, self.hse, faults), local_address(self.hse, port or 0), "reference-ue")

    @property
    def died_at(self) -> float | None:
        return self.protocol.died_at

    def _on_loop(self, action: Callable[..., None], *args: Any) -> None:
        """Run `action` on the UE's loop and wait for it: the protocol is never touched from two threads."""
        if not self._thread.is_alive():
            raise RuntimeError("the reference UE is not running")

        async def act() -> None:
            action(*args)

        asyncio.run_coroutine_threadsafe(act(), self._loop).result(timeout=TRIGGER_TIMEOUT)

    # ---- triggers (pixit.triggers for the embedded reference: keyword values are strings) ------------

    def session(self) -> None:
        self._on_loop(self.protocol.start_session)

    def send_data(self, data: str) -> None:
        """`data`: the payload in hex, as the trigger's {data} gives it."""
        try:
            payload = bytes.fromhex(data)
        except ValueError:
            raise ValueError(f"send_data takes the payload in hex, not {data[:40]!r}") from None
        self._on_loop(self.protocol.send_data, payload)

    def manage_keys(self) -> None:
        self._on_loop(self.protocol.ask_for_keys)

    def terminate(self) -> None:
        self._on_loop(self.protocol.end_session)

    @property
    def triggers(self) -> dict[str, Callable[..., None]]:
        """The triggers by their PIXIT names."""
        return {
            "session": self.session,
            "send_data": self.send_data,
            "manage_keys": self.manage_keys,
            "terminate": self.terminate,
        }

    def command(self, line: str) -> str:
        """Run one command line of `serve ue --command-inbox` (session, send_data HEX, manage_keys, terminate);
        what it did, for the log."""
        name, *args = line.split()
        trigger = self.triggers.get(name)
        if trigger is None or len(args) != (name == "send_data"):
            raise ValueError(f"not a UE command: {line!r}; known: session, send_data HEX, manage_keys, terminate")
        trigger(*args)
        return f"ran {line.strip()!r}"
