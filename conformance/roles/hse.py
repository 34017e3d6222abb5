"""The harness's HSE, towards a UE under test: a test HSE on a real UDP socket that the case steers step by step,
and that misbehaves on purpose when a step says so.

It lives for a whole run (the UE is configured with one address: `address`), each case taps it into its own pcap
(`attach`). It plays the home network of PIXIT subscriber 0 (the UE's USIM): it de-conceals a SUCI with the PIXIT's
home network keys, makes AKA vectors with its own SQN (one IND slot, SEQ + 1 a vector, as TS 33.102 C.3's simplest
profile; an AUTS moves it past the USIM's), derives the session keys the HSE configuration announces (what the
UE derives: `emsdp.ue_side`), and protects and verifies with `emsdp.secure`. It answers nothing on its own: the
case decides each message, and the checks on what the UE sent are the engine's (engine/verbs/hse.py), with the
facts for them here (`verifies`, `fresh`, `res_correct`, ...).

What it reads goes through datagram hygiene (`hse_datagrams`); reply timeouts and silence windows come from
`Timing` (measured when the PIXIT says so), as for the UE role.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conformance.capture.tap import PcapTap
from conformance.crypto.aka import AuthError, AuthVector, generate_vector, resynchronise, sqn_bytes
from conformance.crypto.keys import KeyHierarchy
from conformance.crypto.milenage import Milenage
from conformance.crypto.protect import DOWNLINK, UPLINK
from conformance.crypto.suci import SuciError, suci_imsi
from conformance.emsdp import hse_side
from conformance.emsdp.codec import Codec
from conformance.emsdp.fast import Message
from conformance.emsdp.secure import MessageSecurity
from conformance.emsdp.ue_side import NoSessionKeys, request_checksum, session_keys
from conformance.emsdp.values import decode_imsi, decode_ue_config, reject_tlvs, tlv_values
from conformance.roles.errors import NoReply, ProtocolError
from conformance.roles.hse_datagrams import HseDatagrams
from conformance.roles.timing import Timing

SESSION_KEY_ID = 1  # the key set a Session Start establishes (Key ID 0: no keys), as the reference HSE uses
AUTN_FAULTS = ("bad_mac", "sqn_out_of_range", "replay")


@dataclass
class HseSession:
    """One BEST session as the harness's HSE set it up: the request it answers, the vector and keys in use."""

    id: int
    ue: tuple[str, int]  # where the UE sent its Session Request from
    request: bytes
    eas_id: str
    snn: str  # the serving network name the keys take (the UE's Serving Network TLV, else the PIXIT's)
    serving_network: bytes | None  # the TLV as sent
    key_agreement: str
    service: str
    mode: str
    scheme: int
    vector: AuthVector
    keys: dict[str, bytes]
    key_id: int = SESSION_KEY_ID
    hse_cp: int = 0  # the HSE's last counter on each plane
    hse_up: int = 0
    ue_cp: int = -1  # the UE's last accepted counter on each plane
    ue_up: int = -1
    confirmed: bool = False
    pending: AuthVector | None = None  # a Manage Keys run in progress
    next_keys: dict[str, bytes] = field(default_factory=dict)  # keys of the next session (seed 003)
    sent: dict[str, bytes] = field(default_factory=dict)  # the last message of each kind sent: `counter: replay`
    over: str = ""  # why a procedure ended it (a Terminate, a Message Reject), if one did


class HarnessHse:
    """A steerable test HSE bound at `address` (port 0: a free one; `address` then says where). `pixit` and `pics`
    are the profile's sections: the subscriber, home network keys, serving network and timing; the services and
    modes the UE claims."""

    def __init__(self, binding: Mapping[str, Any], pixit: Any, pics: Any, address: tuple[str, int]):
        self.binding = binding
        self.codec = Codec(binding)
        self.layout = self.codec.layout
        self.security = MessageSecurity(self.codec, binding)
        self.hierarchy = KeyHierarchy.from_binding(binding)
        self.pixit, self.pics = pixit, pics
        self.subscriber = subscriber = pixit.subscribers[0]
        opc = subscriber.opc or Milenage.from_op(subscriber.k, subscriber.op).opc
        self.milenage = Milenage(subscriber.k, opc)
        self.sqn = int.from_bytes(subscriber.sqn, "big")  # SQN_HE
        self.hn_keys = {(k.id, k.profile): k.private_key for k in pixit.home_network_keys if k.private_key}
        self.wire = HseDatagrams(self.codec, address[0], address[1], self._decode, self._past)
        measured = pixit.timing == "measured"
        # measured on the UE under test's interface, which the harness reaches through this endpoint
        self.timing = Timing(("ue", *self.wire.address), pixit.reply_timeout, pixit.silence_window, measured)
        self.wire.on_round_trip = self.timing.record
        self.sessions: dict[int, HseSession] = {}
        self.ended: dict[int, str] = {}  # session id -> why the HSE no longer uses it (a newer one replaced it)
        self.session: HseSession | None = None  # the session the case works on
        self.request: Message | None = None  # the last Session Request received
        self.request_from: tuple[str, int] | None = None
        self.vector: AuthVector | None = None  # the last vector sent (Session Start or Manage Keys Request)
        self.last_from_ue: Message | None = None  # the last message of the UE handed out
        self._next_id = 1

    @property
    def address(self) -> tuple[str, int]:
        """Where the HSE listens: the UE under test sends its Session Request here."""
        return self.wire.address

    @property
    def notes(self) -> list[dict[str, Any]]:
        """The datagrams set aside in this case, and why (hse_datagrams)."""
        return self.wire.notes

    def attach(self, tap: PcapTap | None) -> None:
        """A case begins: its pcap records the HSE's datagrams from now on."""
        self.wire.attach(tap)

    def detach(self) -> None:
        self.wire.detach()

    def triggered(self) -> None:
        """A trigger is about to make the UE act: what it sent before is not its reaction (hse_datagrams)."""
        self.wire.triggered()

    def close(self) -> None:
        self.wire.close()

    def __enter__(self) -> HarnessHse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reading ---------------------------------------------------------------------------------------

    def _decode(self, data: bytes) -> Message:
        packet = self.codec.decode(data)
        session = self.sessions.get(getattr(packet, "session_id", None) or -1)
        return packet if session is None or session.scheme == packet.scheme else self.codec.decode(data, session.scheme)

    def _past(self, session_id: int) -> str | None:
        return self.ended.get(session_id)

    def receive(
        self, timeout: float | None = None, *, grace: float = 0.0, expecting: str | None = None
    ) -> Message | None:
        """The UE's next message that can be a reaction to the case (hse_datagrams), or None on silence."""
        packet = self.wire.receive(
            self.timing.reply() if timeout is None else timeout, grace=grace, expecting=expecting
        )
        if packet is not None:
            self.last_from_ue = packet
        if packet is not None and self.name(packet) == "session_request":
            self.request, self.request_from = packet, self.wire.ue
        return packet

    def expect(self, what: str, timeout: float | None = None, grace: float = 0.0) -> Message:
        """The UE's next message, which must be `what` (a command name, or "user_data"). NoReply on silence."""
        packet = self.receive(timeout, grace=grace, expecting="up" if what == "user_data" else what)
        if packet is None:
            raise NoReply(f"expected {what}, got silence")
        if self.name(packet) != what:
            raise ProtocolError(f"expected {what}, got {self.name(packet)}: {self.codec.summary(packet)}")
        return packet

    def name(self, packet: Message) -> str:
        """What a message is: user_data, a command name of the binding, or how it does not read."""
        if packet.plane == "up":
            return "user_data"
        if packet.plane == "cp":
            return self.layout.command_names().get(packet.command, f"unknown command {packet.command:#04x}")
        return "not EMSDP"

    # ---- Session Request -> Session Start -----------------------------------------------------------------

    def identity(self, request: Message) -> tuple[str, str | None, str]:
        """(kind: imsi | suci | none, the IMSI it names or None, why not) of a Session Request."""
        tlvs = tlv_values(request)
        try:
            if "suci" in tlvs:
                return "suci", suci_imsi(tlvs["suci"], self.layout.suci_format, self.hn_keys), ""
            if "imsi" in tlvs:
                return "imsi", decode_imsi(tlvs["imsi"]), ""
        except (SuciError, ValueError) as exc:
            return ("suci" if "suci" in tlvs else "imsi"), None, str(exc)
        return "none", None, "neither an IMSI nor a SUCI TLV"

    def next_vector(self, autn: str | None = None) -> AuthVector:
        """A fresh vector for the subscriber (SEQ + 1). autn: bad_mac (MAC-A one bit off), sqn_out_of_range (an
        SQN the USIM has seen: SEQ 0, never fresh; SQN_HE stays where it is) or replay (the last vector the HSE
        sent, RAND and AUTN again)."""
        if autn == "replay":
            if self.vector is None:
                raise ProtocolError("no vector was sent before, to replay")
            return self.vector
        rand, amf = os.urandom(16), self.subscriber.amf
        if autn == "sqn_out_of_range":
            return generate_vector(self.milenage, rand, sqn_bytes(0), amf)
        self.sqn += 1 << self.binding["aka.sqn.ind_bits"]
        vector = generate_vector(self.milenage, rand, sqn_bytes(self.sqn), amf)
        if autn == "bad_mac":
            vector = AuthVector(**{**vector.__dict__, "autn": vector.autn[:-1] + bytes([vector.autn[-1] ^ 0x01])})
        return vector

    def session_start(
        self,
        *,
        autn: str | None = None,
        checksum: str | None = None,
        service: str | None = None,
        key_agreement: str | None = None,
        mode: str | None = None,
    ) -> Message:
        """Answer the last Session Request with a Session Start on a new session (the same one after an AUTS):
        RAND, AUTN, the HSE configuration, the request checksum. autn: bad_mac | sqn_out_of_range; checksum:
        corrupt; service, key_agreement, mode: the HSE's choice unless given."""
        request = self.request
        if request is None or self.request_from is None:
            raise ProtocolError("no Session Request to answer")
        tlvs = tlv_values(request)
        try:
            offered = decode_ue_config(self.layout, tlvs["ue_config"])
            eas_id = tlvs["enterprise_setup"].decode("utf-8")
        except (KeyError, ValueError) as exc:
            raise ProtocolError(f"the Session Request does not read: {exc}") from None
        serving = tlvs.get("serving_network")
        sn_id = hse_side.sn_id(self.layout.serving_network_encoding, serving, self._known_networks())
        agreement = key_agreement or self._key_agreement(offered["key_agreements"], serving, sn_id)
        vector = self.next_vector(autn)
        old = self.session
        again = old is not None and old.request == bytes(request) and not old.confirmed
        session_id = old.id if again else self._allocate()
        snn = self.pixit.serving_network_name
        if serving is not None and self.layout.serving_network_encoding == "snn":
            snn = serving.decode("utf-8", "replace")
        session = HseSession(
            session_id,
            self.request_from,
            bytes(request),
            eas_id,
            snn,
            serving,
            agreement,
            service or self._service(offered["confidentiality_requested"]),
            mode or self._mode(),
            self.layout.default_scheme,
            vector,
            self._keys(vector, agreement, eas_id, snn, sn_id),
        )
        if old is not None and old.id != session_id:
            self._replaced(old, f"the Session Request of session {session_id} replaced it")
        self.sessions[session_id], self.session, self.vector = session, session, vector
        config = hse_side.hse_config(
            self.layout,
            self.binding,
            service=session.service,
            mode=session.mode,
            key_agreement=agreement,
            scheme=session.scheme,
        )
        digest = request_checksum(self.binding, self.security, session.request, session.keys)
        digest = digest[: self.binding["emsdp.request_checksum.bytes"]]
        if checksum == "corrupt":
            digest = bytes([digest[0] ^ 0x01]) + digest[1:]
        session.hse_cp += 1
        items = [("rand", vector.rand), ("autn", vector.autn), ("hse_config", config), ("request_checksum", digest)]
        message = self.codec.cp("session_start", items, key_id=0, counter=session.hse_cp, session_id=session.id)
        return self.send(message, session)

    def _known_networks(self) -> dict[bytes, bytes]:
        pixit = self.pixit
        known = pixit.serving_network_id
        return {pixit.serving_network_name.encode("utf-8"): known} if known else {}

    def _key_agreement(self, offered: list[str], serving: bytes | None, sn_id: bytes | None) -> str:
        usable = {"umts"} | ({"5g_aka", "eap_aka_prime"} if serving else set()) | ({"eps"} if sn_id else set())
        allowed = set(self.subscriber.key_agreements) & usable
        for name in hse_side.KEY_AGREEMENT_PREFERENCE:
            if name in offered and name in allowed:
                return name
        raise ProtocolError(f"no key agreement in common: the UE offers {offered}, the HSE allows {sorted(allowed)}")

    def _service(self, confidentiality: bool) -> str:
        allowed = set(self.subscriber.services) & set(self.pics.services)
        for name in (["up_confidential"] if confidentiality else []) + ["up_integrity", "key_agreement_only"]:
            if name in allowed:
                return name
        raise ProtocolError("no service the subscriber is allowed and the UE claims (pics.services)")

    def _mode(self) -> str:
        modes = [m for m in self.pics.modes if m in self.subscriber.modes] or self.pics.modes
        return "ue_to_hse" if "ue_to_hse" in modes else modes[0]

    def _keys(self, vector: AuthVector, agreement: str, eas_id: str, snn: str, sn_id: bytes | None) -> dict[str, bytes]:
        """The keys of an AKA run for the session, as the UE derives them from the HSE configuration."""
        config = {
            "key_agreement": agreement,
            "ciphering_algorithm": self.binding["protection.algorithm_ids.ciphering"],
            "integrity_algorithm": self.binding["protection.algorithm_ids.integrity"],
        }
        try:
            return session_keys(
                self.hierarchy,
                rand=vector.rand,
                autn=vector.autn,
                config=config,
                ck=vector.ck,
                ik=vector.ik,
                snn=snn,
                eas_id=eas_id,
                sn_id=sn_id,
            )
        except NoSessionKeys as exc:
            raise ProtocolError(f"the HSE cannot key a {agreement} session: {exc}") from None

    def _allocate(self) -> int:
        limit = (1 << self.layout.field_bits["session_id"]) - 1
        while self._next_id in self.sessions or self._next_id in self.ended or not self._next_id:
            self._next_id = self._next_id % limit + 1
        session_id, self._next_id = self._next_id, self._next_id % limit + 1
        return session_id

    def _replaced(self, session: HseSession, why: str) -> None:
        """A newer session replaced this one: what still comes on it is stale (set aside, noted)."""
        self.ended[session.id] = why

    def end(self, why: str) -> None:
        """A procedure ended the case's session (terminated, rejected). It stays the case's session: a step may
        still send on it, to see that the UE acts on nothing, and what the UE sends on it is handed out."""
        if self.session is not None:
            self.session.over = why

    # ---- downlink --------------------------------------------------------------------------------------

    def current(self) -> HseSession:
        if self.session is None:
            raise ProtocolError("no BEST session with the UE")
        return self.session

    def send(self, message: Message | bytes, session: HseSession | None = None) -> Message:
        """Send a message to the UE (of `session`, else its last address); kept for `counter: replay`."""
        raw = bytes(message)
        packet = message if isinstance(message, Message) else self._decode(raw)
        if session is not None:
            session.sent[self.name(packet)] = raw
        self.wire.send(raw, session.ue if session is not None else None)
        return packet

    def protected(self, command: str | int, tlvs: list[tuple[str, bytes]], *, counter: int | None = None) -> Message:
        """A downlink CP message under the session's keys, with the HSE's next counter unless one is given."""
        session = self.current()
        if counter is None:
            session.hse_cp += 1
            counter = session.hse_cp
        return self.security.session_cp(session, command, tlvs, counter, DOWNLINK)

    def skip(self, plane: str, count: int) -> None:
        """The HSE's next counter on `plane` jumps `count` ahead (as if that many messages were lost)."""
        session = self.current()
        if plane == "up":
            session.hse_up += count
        else:
            session.hse_cp += count

    def user_data(self, data: bytes, *, counter: int | None = None) -> Message:
        """Downlink UP data: ciphered when the service is confidential, always integrity protected."""
        session = self.current()
        if counter is None:
            session.hse_up += 1
            counter = session.hse_up
        return self.security.session_up(session, data, counter, DOWNLINK, cipher=session.service == "up_confidential")

    def manage_keys_request(self, *, autn: str | None = None, counter: int | None = None) -> Message:
        """A Manage Keys Request with a fresh vector (RAND, AUTN), protected; the run is pending until answered."""
        session = self.current()
        vector = session.pending = self.vector = self.next_vector(autn)
        return self.protected("manage_keys_request", [("rand", vector.rand), ("autn", vector.autn)], counter=counter)

    def message_reject(self, cause: str, rejected: int | None) -> Message:
        """A Message Reject: protected on the session if there is one, else unprotected on session 0."""
        tlvs = reject_tlvs(self.layout, cause, rejected)
        if self.session is not None:
            return self.protected("message_reject", tlvs)
        return self.codec.cp("message_reject", tlvs, key_id=0, counter=0, session_id=0)

    def unknown_command_code(self) -> int:
        """A command code the binding does not define."""
        return next(c for c in range(0x7F, 0, -1) if c not in self.layout.command_names())

    def with_key_id(self, message: Message, key_id: int) -> Message:
        """The message with another Key ID, its MAC sealed again under the session's keys (only the Key ID is off)."""
        changed = self.codec.decode(self.codec.fast.replace(message, key_id=key_id), message.scheme)
        return self.security.seal(changed, self.current().keys, DOWNLINK)

    # ---- facts about what the UE sent ----------------------------------------------------------------

    def session_of(self, packet: Message) -> HseSession | None:
        return self.sessions.get(packet.session_id or -1)

    def verifies(self, packet: Message) -> bool:
        """Whether a protected uplink message's MAC verifies under the keys of the session it names."""
        session = self.session_of(packet)
        return session is not None and bool(self.security.verify(packet, session.keys, UPLINK))

    def fresh(self, packet: Message) -> bool:
        """Whether its counter is above the last the HSE accepted from the UE on that plane of the session."""
        session = self.session_of(packet)
        if session is None or packet.counter is None:
            return False
        return packet.counter > (session.ue_up if packet.plane == "up" else session.ue_cp)

    def accept(self, packet: Message) -> bool:
        """Take a protected uplink message as the UE's if its MAC verifies and its counter is fresh."""
        if not (packet.key_id and self.verifies(packet) and self.fresh(packet)):
            return False
        session = self.session_of(packet)
        assert session is not None
        if packet.plane == "up":
            session.ue_up = packet.counter
        else:
            session.ue_cp = packet.counter
        return True

    def plaintext(self, packet: Message) -> bytes | None:
        """The user data an uplink UP message carries, deciphered for a confidential session."""
        session = self.session_of(packet)
        if session is None or packet.plane != "up":
            return None
        if session.service != "up_confidential":
            return packet.data
        return self.security.crypt(packet.data, session.keys, "up", session.id, packet.counter, session.scheme, UPLINK)

    def res_correct(self, res: bytes | None) -> bool:
        """Whether a RES is the XRES of the last vector the HSE sent."""
        return res is not None and self.vector is not None and res == self.vector.xres

    def resynchronise(self, auts: bytes) -> str | None:
        """Verify an AUTS for the last vector's RAND and move SQN_HE past the USIM's SQN_MS; why not, or None."""
        if self.vector is None:
            return "no vector was sent to resynchronise from"
        try:
            sqn_ms = resynchronise(self.milenage, self.vector.rand, auts, bytes.fromhex(self.binding["aka.resync_amf"]))
        except AuthError as exc:
            return str(exc)
        self.sqn = max(self.sqn, int.from_bytes(sqn_ms, "big"))
        return None

    def confirmed(self, packet: Message) -> None:
        """A Start Confirmation with the right RES: the session is set up. A Manage Keys Response with it: the
        new keys are those of the next session (seed 003)."""
        session = self.session_of(packet)
        if session is None:
            return
        if self.name(packet) == "session_start_confirmation":
            session.confirmed = True
        elif session.pending is not None:
            vector, session.pending = session.pending, None
            sn_id = hse_side.sn_id(
                self.layout.serving_network_encoding, session.serving_network, self._known_networks()
            )
            session.next_keys = self._keys(vector, session.key_agreement, session.eas_id, session.snn, sn_id)
