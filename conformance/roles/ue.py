"""The UE role: a BEST device with a USIM emulation, talking EMSDP to an HSE over a real UDP socket.

It does what a conformant UE does and nothing it is not told to: verifies AUTN (answering AUTS on an SQN
failure), derives the keys the HSE configuration announces, keeps its counters, protects what it sends and
checks what it receives. Tests and suites steer it step by step and look at every message themselves.

What it sends and reads goes through datagram hygiene (`datagrams`): the network's duplicates, delays and
reordering are set aside and noted, never handed out as the SUT's answer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conformance.capture.tap import PcapTap
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
)
from conformance.emsdp.values import decode_hse_config, tlv_values
from conformance.roles.datagrams import (
    DUPLICATE,
    FOLLOWED,
    LATE,
    SILENCE,
    STALE,
    SUPERSEDED,
    Datagrams,
    annotate_trace,
    late_grace,
)
from conformance.roles.errors import LateReply, NoReply, NotJudgeable, PortUnreachable, ProtocolError
from conformance.roles.timing import Timing
from conformance.roles.udp import UdpLink

__all__ = [  # what the engine and tests take from the UE role, wherever it lives
    "DUPLICATE",
    "FOLLOWED",
    "LATE",
    "SILENCE",
    "STALE",
    "SUPERSEDED",
    "Credentials",
    "LateReply",
    "NoReply",
    "NotJudgeable",
    "PortUnreachable",
    "ProtocolError",
    "Ue",
    "UeSession",
    "annotate_trace",
    "late_grace",
    "tlv_values",
]


@dataclass(frozen=True)
class Credentials:
    imsi: str
    k: bytes
    opc: bytes
    sqn: bytes = bytes(6)  # the USIM's SQN_MS to start from

    @classmethod
    def from_subscriber(cls, subscriber: Any) -> Credentials:
        """From a profile's pixit subscriber (op or opc)."""
        opc = subscriber.opc or Milenage.from_op(subscriber.k, subscriber.op).opc
        return cls(subscriber.imsi, subscriber.k, opc, subscriber.sqn)


@dataclass
class UeSession:
    """What the UE knows about its BEST session after a Session Start it accepted."""

    id: int
    scheme: int
    config: dict[str, Any]
    rand: bytes
    res: bytes
    keys: dict[str, bytes]
    checksum_ok: bool
    key_id: int = 1
    cp_counter: int = 0
    up_counter: int = 0
    hse_cp_seen: int = -1
    hse_up_seen: int = -1
    log: list[str] = field(default_factory=list)
    opened: int = 0  # arrival (ns since the epoch) of the Session Start the session comes from


class Ue:
    def __init__(
        self,
        binding: Mapping[str, Any],
        credentials: Credentials,
        hse: tuple[str, int],
        *,
        snn: str,
        eas_id: str,
        sn_id: bytes | None = None,
        tap: PcapTap | None = None,
        timeout: float = 2.0,
        timing: Timing | None = None,
    ):
        self.binding = binding
        self.codec = Codec(binding)
        self.layout = self.codec.layout
        self.security = MessageSecurity(self.codec, binding)
        self.hierarchy = KeyHierarchy.from_binding(binding)
        self.credentials = credentials
        self.milenage = Milenage(credentials.k, credentials.opc)
        self.usim = Usim.from_binding(self.milenage, binding, int.from_bytes(credentials.sqn, "big"))
        self.hse = hse
        self.snn = snn
        self.sn_id = sn_id if sn_id is not None else serving_network_id(self.layout.serving_network_encoding, snn)
        self.eas_id = eas_id
        self.timing = timing if timing is not None else Timing(hse, timeout)  # fixed, unless the profile says
        link = UdpLink(hse, tap, self.timing.reply_timeout)
        self.sock: Any = link.sock
        self.session: UeSession | None = None
        self.last_request = b""
        self.last_sent = b""
        self.received: list[Message] = []  # every message handed to the steps, for `protection_seen`
        self.datagrams: Datagrams[UeSession] = Datagrams(self, link)

    @property
    def timeout(self) -> float:
        """How long to wait for an answer when the step does not say (timing.py: fixed or measured)."""
        return self.timing.reply()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Ue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- wire: through datagram hygiene (datagrams.py) ---------------------------------------------

    def send(self, message: Message | bytes) -> bytes:
        """Send a message to the HSE. What already arrived is read first (`drain`): none of it can answer this."""
        raw = bytes(message)
        if self.datagrams.send(raw):
            self.last_request = raw
        self.last_sent = raw
        return raw

    def receive(
        self, timeout: float | None = None, *, grace: float = 0.0, expecting: str | None = None
    ) -> Message | None:
        """The next datagram that can be the answer the UE waits for, or None on silence (`Datagrams.receive`)."""
        packet = self.datagrams.receive(timeout, grace=grace, expecting=expecting)
        if packet is not None:
            self.received.append(packet)
        return packet

    def expect_silence(self, window: float, what: str = "the silence window") -> Message | None:
        """The first datagram within `window` that can be a reaction to the UE's last message, or None
        (`Datagrams.expect_silence`)."""
        packet = self.datagrams.expect_silence(window, what)
        if packet is not None:
            self.received.append(packet)
        return packet

    def drain(self) -> None:
        """Read, without waiting, what already arrived (`Datagrams.drain`)."""
        self.datagrams.drain()

    def listen(self, seconds: float) -> None:
        """Read what arrives for `seconds`, handing nothing out (`Datagrams.listen`)."""
        self.datagrams.listen(seconds)

    def check_judged(self) -> None:
        """Raise LateReply if a datagram came after a silence window before the next step acted."""
        self.datagrams.check_judged()

    def follow_answer(self) -> None:
        """Before anything uses the session: follow the HSE's newer answer to a duplicated Session Request
        (`Datagrams.follow_answer`)."""
        self.datagrams.follow_answer()

    @property
    def received_from(self) -> tuple[str, int] | None:
        return self.datagrams.received_from

    @property
    def received_at(self) -> int | None:
        """Arrival (ns since the epoch) of the last datagram handed out."""
        return self.datagrams.received_at

    @property
    def last_received(self) -> Message | None:
        return self.datagrams.last_received

    @property
    def notes(self) -> list[dict[str, Any]]:
        """The datagrams set aside, and why: evidence for the case's trace."""
        return self.datagrams.notes

    @property
    def spoiled(self) -> str | None:
        """Why what follows cannot be judged: the network duplicated the request of the session in use."""
        return self.datagrams.spoiled

    @property
    def second_answers(self) -> list[tuple[int, int]]:
        """(arrival, session id) of second answers to a Session Request."""
        return self.datagrams.second_answers

    @property
    def superseded(self) -> dict[int, UeSession]:
        """Sessions the UE left for the HSE's answer to a duplicated Session Request."""
        return self.datagrams.superseded

    @property
    def path_duplicates(self) -> bool:
        """Whether this UE, or another of this process, saw the network duplicate datagrams towards the HSE."""
        return self.datagrams.path_duplicates

    @property
    def held_session(self) -> int | None:
        """The session the UE works on: its open session, else the one its AUTS or its answer names."""
        if self.session is not None:
            return self.session.id
        return self.datagrams.held_session

    def says_unknown_session(self, packet: Message | None) -> bool:
        """Whether a message is a Message Reject with the cause unknown_session."""
        if packet is None or not self._is_command_packet(packet, "message_reject"):
            return False
        cause = tlv_values(packet).get("cause")
        return bool(cause) and cause[0] == self.layout.causes.get("unknown_session")

    def _is_command_packet(self, packet: Message, name: str) -> bool:
        fields = getattr(packet, "fields", {})
        return getattr(packet, "plane", None) == "cp" and fields.get("cmd") == self.layout.commands.get(name)

    # ---- session set-up ----------------------------------------------------------------------------

    def build_session_request(
        self,
        *,
        identity: str = "imsi",
        suci: bytes | None = None,
        key_agreements: tuple[str, ...] = ("umts", "5g_aka"),
        confidentiality: bool = False,
        serving_network: bool = True,
        eas_id: str | None = None,
        release: int | None = None,
        imsi: str | None = None,
        extra: tuple[tuple[str, bytes], ...] = (),
    ) -> Message:
        """A Session Request (Session ID 0, Key ID 0, counter unchecked by the HSE); `imsi` overrides the
        subscriber's, e.g. to ask for one the HSE does not know."""
        tlvs = session_request_tlvs(
            self.layout,
            identity=("suci", suci) if identity == "suci" and suci else imsi_identity(imsi or self.credentials.imsi),
            release=release or self.binding["release.ts33163"],
            key_agreements=list(key_agreements),
            confidentiality=confidentiality,
            eas_id=eas_id or self.eas_id,
            serving_network=self.snn if serving_network else None,
            extra=extra,
        )
        return self.codec.cp("session_request", tlvs, key_id=0, counter=0, session_id=0)

    def session_request(self, **options: Any) -> Message:
        """Build and send a Session Request (options as for `build_session_request`)."""
        message = self.build_session_request(**options)
        self.last_request = self.send(message)
        return message

    def accept_session_start(self, packet: Message) -> AutnCheck:
        """Run the USIM on a Session Start; on success derive the keys and open the session."""
        tlvs = tlv_values(packet)
        for needed in ("rand", "autn", "hse_config"):
            if needed not in tlvs:
                raise ProtocolError(f"Session Start without {needed}: {self.codec.describe(packet)}")
        try:  # a malformed Session Start is the SUT's fault, to be reported, not a harness error
            config = decode_hse_config(self.layout, tlvs["hse_config"])
            agreement = config.get("key_agreement")
            if agreement not in self.hierarchy.root_by_key_agreement:
                raise ProtocolError(f"Session Start names key agreement {agreement!r}")
            check = self.usim.authenticate(
                tlvs["rand"], tlvs["autn"], require_separation_bit=self.binding[f"aka.amf_separation_bit.{agreement}"]
            )
        except ValueError as exc:
            raise ProtocolError(f"Session Start does not decode: {exc}: {self.codec.describe(packet)}") from None
        self.datagrams.usim_ran(packet, check)
        if check.outcome is not AutnOutcome.OK:
            return check
        keys = self._keys(tlvs, config, check.ck, check.ik)
        scheme = config.get("counter_scheme", self.layout.default_scheme)
        self.datagrams.session_opened(packet.session_id, self.session.id if self.session is not None else None)
        self.session = UeSession(
            packet.session_id,
            scheme,
            config,
            tlvs["rand"],
            check.res,
            keys,
            self._checksum_ok(tlvs.get("request_checksum"), keys),
            opened=self.datagrams.received_at or time.time_ns(),
        )
        return check

    def _keys(self, tlvs: Mapping[str, bytes], config: Mapping[str, Any], ck: bytes, ik: bytes) -> dict[str, bytes]:
        """The session keys of a Session Start's AKA run (the USIM's CK and IK), by the HSE configuration."""
        try:
            return session_keys(
                self.hierarchy,
                rand=tlvs["rand"],
                autn=tlvs["autn"],
                config=config,
                ck=ck,
                ik=ik,
                snn=self.snn,
                eas_id=self.eas_id,
                sn_id=self.sn_id,
            )
        except NoSessionKeys as exc:  # e.g. EPS AKA without the serving network's PLMN id: no key of the session
            raise ProtocolError(str(exc)) from None

    def _checksum_ok(self, checksum: bytes | None, keys: Mapping[str, bytes]) -> bool:
        return checksum_matches(self.binding, self.security, checksum, self.last_request, keys)

    def checksum_covers(self, packet: Message, request: bytes) -> bool | None:
        """Whether a Session Start's request checksum covers `request`; None if it cannot be told. The USIM is
        not run: its SQN stays as it is."""
        tlvs = tlv_values(packet)
        checksum = tlvs.get("request_checksum")
        if not checksum:
            return None
        keys: dict[str, bytes] = {}
        if self.binding["emsdp.request_checksum.algorithm"] == "hmac-sha256":
            try:  # the key is the session's: derive it as the USIM would, without touching the USIM's SQN
                ck, ik = self.milenage.f2345(tlvs["rand"])[1:3]
                keys = self._keys(tlvs, decode_hse_config(self.layout, tlvs["hse_config"]), ck, ik)
            except (KeyError, ValueError, ProtocolError):
                return None
        return checksum_matches(self.binding, self.security, checksum, request, keys)

    def sqn_of(self, packet: Message) -> int | None:
        """The SQN a Session Start's AUTN carries (unmasked with AK), to tell the newer of two answers."""
        tlvs = tlv_values(packet)
        rand, autn = tlvs.get("rand"), tlvs.get("autn")
        if not rand or not autn or len(autn) != 16:
            return None
        ak = self.milenage.f2345(rand)[3]
        return int.from_bytes(bytes(a ^ b for a, b in zip(autn[:6], ak, strict=True)), "big")

    def start(self, **request: Any) -> UeSession:
        """Session Request, Session Start accepted by the USIM, Start Confirmation with RES."""
        self.session_request(**request)
        packet = self.expect("session_start")
        check = self.accept_session_start(packet)
        if check.outcome is not AutnOutcome.OK:
            raise ProtocolError(f"AUTN refused: {check.outcome.value}: {check.reason}")
        self.confirm()
        return self.session

    def confirm(self, res: bytes | None = None) -> Message:
        session = self._using()
        return self.send_protected("session_start_confirmation", [("res", session.res if res is None else res)])

    def send_auts(self, auts: bytes, session_id: int) -> Message:
        """Start Confirmation without keys (Key ID 0) carrying AUTS: please resynchronise. If the UE followed a
        newer answer to its request (the network duplicated it), the AUTS is that answer's, on its session."""
        auts, session_id = self.datagrams.auts_to_send(auts, session_id)
        message = self.codec.cp(
            "session_start_confirmation", [("auts", auts)], key_id=0, counter=0, session_id=session_id
        )
        self.send(message)
        self.datagrams.auts_sent(session_id)  # the HSE answers the AUTS with a new Session Start for the request
        return message

    # ---- protected messages ------------------------------------------------------------------------

    def _session(self) -> UeSession:
        if self.session is None:
            raise ProtocolError("no BEST session")
        return self.session

    def _using(self) -> UeSession:
        """The session, about to carry a message: first follow a newer answer to its request, if any."""
        self.datagrams.follow_answer()
        session = self._session()
        self.datagrams.using(session.id)
        return session

    def protected(self, command: str, tlvs: list[tuple[str, bytes]], *, counter: int | None = None) -> Message:
        """An uplink CP message under the session's keys, with the next counter unless one is given."""
        session = self._using()
        if counter is None:
            session.cp_counter += 1
            counter = session.cp_counter
        return self.security.session_cp(session, command, tlvs, counter, UPLINK)

    def send_protected(self, command: str, tlvs: list[tuple[str, bytes]]) -> Message:
        message = self.protected(command, tlvs)
        self.send(message)
        return message

    def user_data(self, data: bytes, *, counter: int | None = None) -> Message:
        """An uplink UP message: ciphered when the service is confidential, always integrity protected."""
        session = self._using()
        if counter is None:
            session.up_counter += 1
            counter = session.up_counter
        return self.security.session_up(
            session, data, counter, UPLINK, cipher=session.config["service"] == "up_confidential"
        )

    def check_downlink(self, packet: Message) -> bytes | None:
        """Verify a downlink message (MAC and counter freshness); for UP data return the plaintext."""
        session = self._session()
        if not self.security.verify(packet, session.keys, DOWNLINK):
            raise ProtocolError(
                f"downlink MAC does not verify under the UE's keys: {self.codec.describe(packet)}; if no protected "
                "message of the SUT verifies, it reads the binding otherwise: compare with `best-conformance vectors`"
            )
        seen = session.hse_cp_seen if packet.plane == "cp" else session.hse_up_seen
        if packet.counter <= seen:
            raise ProtocolError(f"downlink counter {packet.counter} replayed (last {seen})")
        if packet.plane == "cp":
            session.hse_cp_seen = packet.counter
            return None
        session.hse_up_seen = packet.counter
        if session.config["service"] == "up_confidential":
            return self.security.crypt(
                packet.data, session.keys, "up", session.id, packet.counter, session.scheme, DOWNLINK
            )
        return packet.data

    @property
    def sent_protected(self) -> bool:
        """Whether the UE's last message carried a MAC (a Key ID other than 0)."""
        return bool(self.last_sent) and bool(getattr(self.codec.decode(self.last_sent), "key_id", 0))

    def protection_seen(self) -> tuple[int, int]:
        """(received, verifying): the SUT's protected messages (Key ID not 0) the UE was handed on its session,
        and how many of them carry a MAC that verifies under the UE's keys. Only the MAC is checked: counters are
        the steps' business, and nothing here changes the session."""
        session = self.session
        if session is None:
            return 0, 0
        mine = [p for p in self.received if getattr(p, "key_id", 0) and getattr(p, "session_id", None) == session.id]
        return len(mine), sum(bool(self.security.verify(p, session.keys, DOWNLINK)) for p in mine)

    def expect(self, command: str | None, timeout: float | None = None, grace: float = 0.0) -> Message:
        """The next message, which must be `command` (a CP command name) or UP data (None). NoReply on silence;
        LateReply if it comes after `timeout` but within `grace` more."""
        packet = self.receive(timeout, grace=grace, expecting=command or "up")
        if packet is None:
            raise NoReply(f"expected {command or 'user-plane data'}, got silence")
        got = (
            "up"
            if getattr(packet, "plane", None) == "up"
            else self.layout.command_names().get(getattr(packet, "cmd", -1))
        )
        if got != (command or "up"):
            raise ProtocolError(f"expected {command or 'user-plane data'}, got {got}: {self.codec.describe(packet)}")
        return packet

    def answer_manage_keys(self, request: Message) -> tuple[AutnCheck, dict[str, bytes]]:
        """Verify a Manage Keys Request, answer RES (or AUTS) and return the keys of the next session."""
        self.check_downlink(request)
        tlvs = tlv_values(request)
        session = self._session()
        agreement = session.config["key_agreement"]
        check = self.usim.authenticate(
            tlvs["rand"], tlvs["autn"], require_separation_bit=self.binding[f"aka.amf_separation_bit.{agreement}"]
        )
        if check.outcome is AutnOutcome.SYNCH_FAILURE:
            self.send_protected("manage_keys_response", [("auts", check.auts)])
            return check, {}
        if check.outcome is not AutnOutcome.OK:
            raise ProtocolError(f"Manage Keys AUTN refused: {check.reason}")
        self.send_protected("manage_keys_response", [("res", check.res)])
        return check, self._keys(tlvs, session.config, check.ck, check.ik)
