"""One EMSDP UE of a load test: a session at a time against the HSE, every reply verified.

Session Request -> Session Start (AUTN through the USIM, keys derived by the UE itself, the request checksum) ->
Start Confirmation (RES) -> k user-plane round trips (the echo's Key ID, MAC, counter, session and content) ->
Terminate Request -> Terminate Response (Key ID, MAC, counter). A Manage Keys Request the HSE sends on the way is
verified and answered. A reply that is wrong raises VerificationFailure naming the check; silence or a refused
port raises TransportFailure. The octets and the keys come from the harness's shared code (emsdp.ue_side,
emsdp.secure, crypto), the same as the UE role's: this module only sequences and checks.

It knows nothing of Locust: `step(name)` is the context manager that times each exchange (outcome.exchange under
Locust), and `link` is whatever carries datagrams (a UDP socket; in the benchmark, an HSE in the same process).
The payloads are a function of the subscriber and the session number, so a whole run can be recorded and replayed.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from conformance.crypto.aka import AutnOutcome, Usim
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
from conformance.load.outcome import TransportFailure, VerificationFailure
from conformance.profile import LoadedProfile, Subscriber
from conformance.roles.ue import Credentials, UeSession

FIVE_G = ("5g_aka", "eap_aka_prime")  # key agreements that need the Serving Network TLV
Step = Callable[[str], AbstractContextManager[dict[str, Any]]]


class Link(Protocol):
    def send(self, data: bytes) -> None: ...

    def receive(self, timeout: float) -> bytes: ...

    def close(self) -> None: ...


class UdpLink:
    """A UDP socket connected to the HSE: an ICMP port unreachable then shows as a refused receive."""

    def __init__(self, hse: tuple[str, int]):
        self.hse = hse
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(hse)

    def send(self, data: bytes) -> None:
        try:
            self.sock.send(data)
        except OSError as exc:
            raise TransportFailure(f"cannot send to {self.hse[0]}:{self.hse[1]}: {exc.strerror or exc}") from None

    def receive(self, timeout: float) -> bytes:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65535)
        except TimeoutError:
            raise TransportFailure(f"no reply within {timeout:g} s") from None
        except ConnectionRefusedError:
            raise TransportFailure(f"{self.hse[0]}:{self.hse[1]} refused (ICMP port unreachable)") from None
        except OSError as exc:
            raise TransportFailure(f"receive failed: {exc.strerror or exc}") from None

    def close(self) -> None:
        self.sock.close()


class LoadContext:
    """What every UE of one process shares, made once from the profile: binding, codec, keys, what to offer."""

    def __init__(self, profile: LoadedProfile, reply_timeout: float | None = None, payload_bytes: int = 32):
        self.profile = profile
        self.binding = profile.binding
        self.codec = Codec(self.binding)
        self.layout = self.codec.layout
        self.security = MessageSecurity(self.codec, self.binding)
        self.hierarchy = KeyHierarchy.from_binding(self.binding)
        pixit, pics = profile.pixit, profile.pics
        self.snn, self.eas_id = pixit.serving_network_name, pixit.eas_id
        self.sn_id = pixit.serving_network_id or serving_network_id(self.layout.serving_network_encoding, self.snn)
        self.key_agreements = [k for k in pics.key_agreements if k in self.hierarchy.root_by_key_agreement]
        self.confidentiality = "up_confidential" in pics.services
        self.reply_timeout = reply_timeout or pixit.reply_timeout
        self.payload_bytes = payload_bytes
        self.hse = profile.hse_endpoint
        self.commands = self.layout.command_names()
        self._hierarchies: dict[str, KeyHierarchy] = {}

    def hierarchy_for(self, agreement: str) -> KeyHierarchy:
        """The binding's derivations a session of this key agreement is protected with: its root and the keys
        that protect the messages, with what they derive from, and no other. The same derivations as the whole
        table's, the others left out: they would double the UE's cost per session and protect nothing here."""
        hierarchy = self._hierarchies.get(agreement)
        if hierarchy is None:
            specs, keep = self.hierarchy.specs, set()

            def add(name: str) -> None:
                if name in specs and name not in keep:
                    keep.add(name)
                    key = specs[name].key
                    add(self.hierarchy.root_by_key_agreement[agreement] if key == "root" else key)

            add(self.hierarchy.root_by_key_agreement[agreement])
            for name in self.security.key_names.values():
                add(name)
            kept = {name: spec for name, spec in specs.items() if name in keep}
            hierarchy = self._hierarchies[agreement] = KeyHierarchy(kept, self.hierarchy.root_by_key_agreement)
        return hierarchy

    def request(self, imsi: str) -> bytes:
        """The UE's Session Request: the same octets for every session of a subscriber (Session ID 0)."""
        five_g = any(k in FIVE_G for k in self.key_agreements)
        tlvs = session_request_tlvs(
            self.layout,
            identity=imsi_identity(imsi),
            release=self.binding["release.ts33163"],
            key_agreements=self.key_agreements,
            confidentiality=self.confidentiality,
            eas_id=self.eas_id,
            serving_network=self.snn if five_g or self.confidentiality else None,
        )
        return self.codec.fast.cp("session_request", tlvs, key_id=0, counter=0, session_id=0)


class EmsdpUe:
    """One subscriber's UE, its USIM kept across sessions (its SQN is the USIM's state)."""

    def __init__(self, context: LoadContext, subscriber: Subscriber, link: Link):
        self.context = context
        self.credentials = Credentials.from_subscriber(subscriber)
        self.imsi = subscriber.imsi
        self.usim = Usim.from_binding(
            Milenage(self.credentials.k, self.credentials.opc), context.binding, int.from_bytes(subscriber.sqn, "big")
        )
        self.link = link
        self.request = context.request(self.imsi)
        self.sessions = 0
        self.session: UeSession | None = None

    # ---- one session -------------------------------------------------------------------------------------

    def run_session(self, step: Step, round_trips: int) -> None:
        """A whole session; the first wrong or missing reply raises (VerificationFailure, TransportFailure)."""
        context = self.context
        self.sessions += 1
        self.session = None
        with step("Session Request") as info:
            self.link.send(self.request)
            session = self.session = self.accept(self.expect("session_start", info))
        confirmation = context.security.session_cp(
            session, "session_start_confirmation", [("res", session.res)], self._next_cp(), UPLINK
        )
        self.link.send(bytes(confirmation))
        confidential = session.config.get("service") == "up_confidential"
        for n in range(round_trips):
            with step("User Data") as info:
                payload = self.payload(n)
                session.up_counter += 1
                message = context.security.session_up(session, payload, session.up_counter, UPLINK, cipher=confidential)
                self.link.send(bytes(message))
                echoed = self.check_downlink(self.expect(None, info))
                if echoed != payload:
                    raise VerificationFailure(f"echo differs: sent {payload.hex()}, got {echoed.hex()}")
        with step("Terminate") as info:
            request = context.security.session_cp(session, "session_terminate_request", [], self._next_cp(), UPLINK)
            self.link.send(bytes(request))
            self.check_downlink(self.expect("session_terminate_response", info))
        self.session = None

    def payload(self, n: int) -> bytes:
        """The n-th payload of this session: distinct per subscriber, session and message, and reproducible."""
        seed = f"{self.imsi}:{self.sessions}:{n}".encode()
        return hashlib.sha256(seed).digest()[: self.context.payload_bytes]

    def _next_cp(self) -> int:
        session = self.session
        assert session is not None
        session.cp_counter += 1
        return session.cp_counter

    # ---- receiving ---------------------------------------------------------------------------------------

    def expect(self, command: str | None, info: dict[str, Any]) -> Message:
        """The next reply, which must be `command` (None: user-plane data); a Manage Keys Request of the session
        on the way is verified and answered first."""
        context = self.context
        while True:
            data = self.link.receive(context.reply_timeout)
            info["length"] += len(data)
            session = self.session
            message = context.codec.decode(data, session.scheme if session is not None else None)
            if message.plane is None or message.problems:
                problems = "; ".join(message.problems) or "too short for EMSDP"
                raise VerificationFailure(f"malformed reply ({len(data)} octets): {problems}")
            got = "up" if message.plane == "up" else context.commands.get(message.command, f"{message.command:#04x}")
            if got == "manage_keys_request" and command != got and session is not None:
                self.answer_manage_keys(message)
                continue
            if got == "message_reject":
                cause = tlv_values(message).get("cause", b"")
                name = context.layout.cause_names().get(cause[0]) if cause else None
                raise VerificationFailure(
                    f"Message Reject (cause {name or cause.hex() or 'none'}) instead of {command or 'user data'}"
                )
            if got != (command or "up"):
                raise VerificationFailure(f"{got} instead of {command or 'user data'}")
            return message

    def accept(self, start: Message) -> UeSession:
        """A Session Start through the USIM: AUTN, the HSE configuration, the keys, the request checksum."""
        context = self.context
        tlvs = tlv_values(start)
        missing = [n for n in ("rand", "autn", "hse_config") if n not in tlvs]
        if missing:
            raise VerificationFailure(f"Session Start without {', '.join(missing)}")
        if not start.session_id:
            raise VerificationFailure("Session Start on Session ID 0")
        try:
            config = decode_hse_config(context.layout, tlvs["hse_config"])
        except ValueError as exc:
            raise VerificationFailure(f"HSE configuration does not decode: {exc}") from None
        agreement = config.get("key_agreement")
        if agreement not in context.key_agreements:
            raise VerificationFailure(f"key agreement {agreement!r} was not offered")
        separation = context.binding[f"aka.amf_separation_bit.{agreement}"]
        check = self.usim.authenticate(tlvs["rand"], tlvs["autn"], require_separation_bit=separation)
        if check.outcome is not AutnOutcome.OK:
            raise VerificationFailure(f"AUTN refused by the USIM ({check.outcome.value}): {check.reason}")
        try:
            keys = session_keys(
                context.hierarchy_for(agreement),
                rand=tlvs["rand"],
                autn=tlvs["autn"],
                config=config,
                ck=check.ck,
                ik=check.ik,
                snn=context.snn,
                eas_id=context.eas_id,
                sn_id=context.sn_id,
            )
        except NoSessionKeys as exc:
            raise VerificationFailure(str(exc)) from None
        checksum = tlvs.get("request_checksum")
        if not checksum_matches(context.binding, context.security, checksum, self.request, keys):
            raise VerificationFailure("the request checksum does not cover this UE's Session Request")
        scheme = config.get("counter_scheme", context.layout.default_scheme)
        return UeSession(start.session_id, scheme, config, tlvs["rand"], check.res, keys, True)

    def check_downlink(self, message: Message) -> bytes:
        """Session, Key ID, MAC and counter of a protected downlink message; its (deciphered) data on the UP."""
        session, context = self.session, self.context
        assert session is not None
        if message.session_id != session.id:
            raise VerificationFailure(f"a reply on session {message.session_id}, not this UE's {session.id}")
        if message.key_id != session.key_id:
            raise VerificationFailure(f"Key ID {message.key_id}, not the session's {session.key_id}")
        if not context.security.verify(message, session.keys, DOWNLINK):
            raise VerificationFailure(f"{message.plane.upper()} MAC does not verify under the session's keys")
        up = message.plane == "up"
        seen = session.hse_up_seen if up else session.hse_cp_seen
        if message.counter <= seen:
            raise VerificationFailure(
                f"downlink {message.plane.upper()} counter {message.counter} not above {seen} (replayed)"
            )
        if not up:
            session.hse_cp_seen = message.counter
            return b""
        session.hse_up_seen = message.counter
        if session.config.get("service") != "up_confidential":
            return message.data
        return context.security.crypt(
            message.data, session.keys, "up", session.id, message.counter, session.scheme, DOWNLINK
        )

    def answer_manage_keys(self, request: Message) -> None:
        """The HSE's Manage Keys Request: verified, its AUTN through the USIM, answered with RES (the new keys are
        for the next session, which starts with its own AKA run anyway)."""
        self.check_downlink(request)
        session, context = self.session, self.context
        assert session is not None
        tlvs = tlv_values(request)
        if "rand" not in tlvs or "autn" not in tlvs:
            raise VerificationFailure("Manage Keys Request without RAND and AUTN")
        agreement = session.config["key_agreement"]
        separation = context.binding[f"aka.amf_separation_bit.{agreement}"]
        check = self.usim.authenticate(tlvs["rand"], tlvs["autn"], require_separation_bit=separation)
        if check.outcome is not AutnOutcome.OK:
            raise VerificationFailure(f"Manage Keys AUTN refused ({check.outcome.value}): {check.reason}")
        answer = context.security.session_cp(
            session, "manage_keys_response", [("res", check.res)], self._next_cp(), UPLINK
        )
        self.link.send(bytes(answer))
