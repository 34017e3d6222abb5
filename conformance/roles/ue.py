"""The UE role: a BEST device with a USIM emulation, talking EMSDP to an HSE over a real UDP socket.

It does what a conformant UE does and nothing it is not told to: verifies AUTN (answering AUTS on an SQN
failure), derives the keys the HSE configuration announces, keeps its counters, protects what it sends and
checks what it receives. Tests and suites steer it step by step and look at every message themselves.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conformance.capture.tap import PcapTap, TappedUdpSocket
from conformance.crypto.aka import AutnCheck, AutnOutcome, SqnPolicy, Usim
from conformance.crypto.keys import KeyHierarchy
from conformance.crypto.milenage import Milenage
from conformance.crypto.protect import DOWNLINK, UPLINK
from conformance.emsdp.codec import Codec
from conformance.emsdp.layers import EmsdpPacket
from conformance.emsdp.secure import MessageSecurity
from conformance.emsdp.values import decode_hse_config, encode_imsi, encode_serving_network, encode_ue_config


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


class ProtocolError(AssertionError):
    """The HSE answered something the UE cannot accept; the message says what."""


class Ue:
    def __init__(
        self,
        binding: Mapping[str, Any],
        credentials: Credentials,
        hse: tuple[str, int],
        *,
        snn: str,
        eas_id: str,
        tap: PcapTap | None = None,
        timeout: float = 2.0,
    ):
        self.binding = binding
        self.codec = Codec(binding)
        self.layout = self.codec.layout
        self.security = MessageSecurity(self.codec, binding)
        self.hierarchy = KeyHierarchy.from_binding(binding)
        self.credentials = credentials
        self.milenage = Milenage(credentials.k, credentials.opc)
        policy = SqnPolicy(binding["aka.sqn.ind_bits"], binding["aka.sqn.delta"], binding["aka.sqn.age_limit"])
        self.usim = Usim(
            self.milenage, policy, bytes.fromhex(binding["aka.resync_amf"]), int.from_bytes(credentials.sqn, "big")
        )
        self.hse = hse
        self.snn = snn
        self.eas_id = eas_id
        self.timeout = timeout
        family = socket.AF_INET6 if ":" in hse[0] else socket.AF_INET
        self.sock: Any = TappedUdpSocket(tap, family) if tap else socket.socket(family, socket.SOCK_DGRAM)
        self.sock.settimeout(timeout)
        self.session: UeSession | None = None
        self.last_request = b""
        self.received_from: tuple[str, int] | None = None

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Ue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- wire --------------------------------------------------------------------------------------

    def send(self, message: EmsdpPacket | bytes) -> bytes:
        raw = bytes(message)
        self.sock.sendto(raw, self.hse)
        return raw

    def receive(self, timeout: float | None = None) -> EmsdpPacket | None:
        """The next datagram from anywhere, decoded with the session's counter scheme; None on silence."""
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            data, self.received_from = self.sock.recvfrom(65535)
        except TimeoutError:
            return None
        except OSError:  # e.g. ICMP port unreachable: the SUT closed its port; to the UE that is silence
            return None
        return self.codec.decode(data, self.session.scheme if self.session else None)

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
    ) -> EmsdpPacket:
        """A Session Request (Session ID 0, Key ID 0, counter unchecked by the HSE); `imsi` overrides the
        subscriber's, e.g. to ask for one the HSE does not know."""
        tlvs: list[tuple[str, bytes]] = (
            [("suci", suci)] if identity == "suci" and suci else [("imsi", encode_imsi(imsi or self.credentials.imsi))]
        )
        tlvs.append(
            (
                "ue_config",
                encode_ue_config(
                    self.layout, release or self.binding["release.ts33163"], list(key_agreements), confidentiality
                ),
            )
        )
        tlvs.append(("enterprise_setup", (eas_id or self.eas_id).encode("utf-8")))
        if serving_network:
            tlvs.append(("serving_network", encode_serving_network(self.layout, self.snn)))
        tlvs.extend(extra)
        return self.codec.cp("session_request", tlvs, key_id=0, counter=0, session_id=0)

    def session_request(self, **options: Any) -> EmsdpPacket:
        """Build and send a Session Request (options as for `build_session_request`)."""
        message = self.build_session_request(**options)
        self.last_request = self.send(message)
        return message

    def accept_session_start(self, packet: EmsdpPacket) -> AutnCheck:
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
        if check.outcome is not AutnOutcome.OK:
            return check
        inputs = {
            "rand": tlvs["rand"],
            "sqn_xor_ak": tlvs["autn"][:6],
            "snn": self.snn.encode("utf-8"),
            "eas_id": self.eas_id.encode("utf-8"),
            "enc_alg_id": bytes([config["ciphering_algorithm"]]),
            "int_alg_id": bytes([config["integrity_algorithm"]]),
        }
        derived, _ = self.hierarchy.derive_all(ck=check.ck, ik=check.ik, key_agreement=agreement, inputs=inputs)
        keys = {name: d.value for name, d in derived.items()}
        scheme = config.get("counter_scheme", self.layout.default_scheme)
        self.session = UeSession(
            packet.session_id,
            scheme,
            config,
            tlvs["rand"],
            check.res,
            keys,
            self._checksum_ok(tlvs.get("request_checksum"), keys),
        )
        return check

    def _checksum_ok(self, checksum: bytes | None, keys: Mapping[str, bytes]) -> bool:
        if checksum is None:
            return False
        if self.binding["emsdp.request_checksum.algorithm"] == "hmac-sha256":
            expected = hmac.digest(self.security.key(keys, "cp", "integrity"), self.last_request, hashlib.sha256)
        else:
            expected = hashlib.sha256(self.last_request).digest()
        return hmac.compare_digest(expected[: len(checksum)], checksum)

    def start(self, **request: Any) -> UeSession:
        """Session Request, Session Start accepted by the USIM, Start Confirmation with RES."""
        self.session_request(**request)
        packet = self.expect("session_start")
        check = self.accept_session_start(packet)
        if check.outcome is not AutnOutcome.OK:
            raise ProtocolError(f"AUTN refused: {check.outcome.value}: {check.reason}")
        self.confirm()
        return self.session

    def confirm(self, res: bytes | None = None) -> EmsdpPacket:
        session = self._session()
        return self.send_protected("session_start_confirmation", [("res", session.res if res is None else res)])

    def send_auts(self, auts: bytes, session_id: int) -> EmsdpPacket:
        """Start Confirmation without keys (Key ID 0) carrying AUTS: please resynchronise."""
        message = self.codec.cp(
            "session_start_confirmation", [("auts", auts)], key_id=0, counter=0, session_id=session_id
        )
        self.send(message)
        return message

    # ---- protected messages ------------------------------------------------------------------------

    def _session(self) -> UeSession:
        if self.session is None:
            raise ProtocolError("no BEST session")
        return self.session

    def protected(self, command: str, tlvs: list[tuple[str, bytes]], *, counter: int | None = None) -> EmsdpPacket:
        """An uplink CP message under the session's keys, with the next counter unless one is given."""
        session = self._session()
        if counter is None:
            session.cp_counter += 1
            counter = session.cp_counter
        return self.security.protected_cp(
            command,
            tlvs,
            session.keys,
            session_id=session.id,
            counter=counter,
            scheme=session.scheme,
            key_id=session.key_id,
            direction=UPLINK,
        )

    def send_protected(self, command: str, tlvs: list[tuple[str, bytes]]) -> EmsdpPacket:
        message = self.protected(command, tlvs)
        self.send(message)
        return message

    def user_data(self, data: bytes, *, counter: int | None = None) -> EmsdpPacket:
        """An uplink UP message: ciphered when the service is confidential, always integrity protected."""
        session = self._session()
        if counter is None:
            session.up_counter += 1
            counter = session.up_counter
        return self.security.protected_up(
            data,
            session.keys,
            session_id=session.id,
            counter=counter,
            scheme=session.scheme,
            key_id=session.key_id,
            direction=UPLINK,
            cipher=session.config["service"] == "up_confidential",
        )

    def check_downlink(self, packet: EmsdpPacket) -> bytes | None:
        """Verify a downlink message (MAC and counter freshness); for UP data return the plaintext."""
        session = self._session()
        if not self.security.verify(packet, session.keys, DOWNLINK):
            raise ProtocolError(f"downlink MAC does not verify: {self.codec.describe(packet)}")
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

    def expect(self, command: str | None, timeout: float | None = None) -> EmsdpPacket:
        """The next message, which must be `command` (a CP command name) or UP data (None)."""
        packet = self.receive(timeout)
        if packet is None:
            raise ProtocolError(f"expected {command or 'user-plane data'}, got silence")
        got = (
            "up"
            if getattr(packet, "plane", None) == "up"
            else self.layout.command_names().get(getattr(packet, "cmd", -1))
        )
        if got != (command or "up"):
            raise ProtocolError(f"expected {command or 'user-plane data'}, got {got}: {self.codec.describe(packet)}")
        return packet

    def answer_manage_keys(self, request: EmsdpPacket) -> tuple[AutnCheck, dict[str, bytes]]:
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
        inputs = {
            "rand": tlvs["rand"],
            "sqn_xor_ak": tlvs["autn"][:6],
            "snn": self.snn.encode("utf-8"),
            "eas_id": self.eas_id.encode("utf-8"),
            "enc_alg_id": bytes([session.config["ciphering_algorithm"]]),
            "int_alg_id": bytes([session.config["integrity_algorithm"]]),
        }
        derived, _ = self.hierarchy.derive_all(ck=check.ck, ik=check.ik, key_agreement=agreement, inputs=inputs)
        return check, {name: d.value for name, d in derived.items()}


def tlv_values(packet: EmsdpPacket) -> dict[str, bytes]:
    """A CP message's TLVs by name (the first of each); unknown tags are left out."""
    found: dict[str, bytes] = {}
    for tlv in getattr(packet, "tlvs", []):
        name = getattr(tlv, "tag_name", None)
        if name and name not in found:
            found[name] = tlv.value
    return found
