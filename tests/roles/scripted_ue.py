"""A conformant UE under test for the harness HSE's engine tests: the harness's UE role on a thread of its own,
acting on triggers and answering what the HSE sends as the issue-15 plan's conformant UE does (a test stand-in,
not the reference UE). `mute` makes it stop answering, as a dead UE would."""

from __future__ import annotations

import contextlib
import queue
import threading
from typing import Any

from conformance.crypto.aka import AutnOutcome
from conformance.emsdp.values import reject_tlvs
from conformance.profile import LoadedProfile
from conformance.roles.errors import LateReply, ProtocolError
from conformance.roles.ue import Credentials, Ue


class ScriptedUe:
    def __init__(self, profile: LoadedProfile, hse: tuple[str, int]):
        pixit = profile.pixit
        self.ue = Ue(
            profile.binding,
            Credentials.from_subscriber(pixit.subscribers[0]),
            hse,
            snn=pixit.serving_network_name,
            sn_id=pixit.serving_network_id,
            eas_id=pixit.eas_id,
        )
        self.confidential = "up_confidential" in profile.pics.services
        self.key_agreements = tuple(profile.pics.key_agreements)
        self.commands: queue.Queue[tuple[str, dict[str, str]]] = queue.Queue()
        self.mute = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def triggers(self) -> dict[str, Any]:
        def trigger(name: str) -> Any:
            return lambda **values: self.commands.put((name, values))

        return {name: trigger(name) for name in ("session", "send_data", "manage_keys", "terminate")}

    def __enter__(self) -> ScriptedUe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.ue.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            while not self.commands.empty():
                self._command(*self.commands.get())
            try:
                packet = self.ue.receive(0.02)
            except (LateReply, ProtocolError):
                continue
            if packet is not None and not self.mute:
                with contextlib.suppress(ProtocolError):  # discarded, as the binding's error reactions say
                    self._answer(packet)

    def _command(self, name: str, values: dict[str, str]) -> None:
        ue = self.ue
        if name == "session":
            ue.session = None
            ue.session_request(key_agreements=self.key_agreements, confidentiality=self.confidential)
        elif name == "send_data":
            ue.send(ue.user_data(bytes.fromhex(values["data"])))
        elif name == "manage_keys":
            ue.send_protected("manage_keys_request", [])
        elif name == "terminate":
            ue.send_protected("session_terminate_request", [])

    def _answer(self, packet: Any) -> None:
        ue = self.ue
        name = "user_data" if packet.plane == "up" else ue.layout.command_names().get(packet.command)
        if name == "session_start":
            check = ue.accept_session_start(packet)
            if check.outcome is AutnOutcome.OK:
                ue.confirm()
            elif check.outcome is AutnOutcome.SYNCH_FAILURE:
                ue.send_auts(check.auts, packet.session_id)
            else:
                tlvs = reject_tlvs(ue.layout, "mac_failure", packet.command)
                ue.send(ue.codec.cp("message_reject", tlvs, key_id=0, counter=0, session_id=packet.session_id))
            return
        if ue.session is None or packet.key_id != ue.session.key_id:
            return  # nothing to act on outside a session, nor under keys it does not hold
        if name == "user_data":
            ue.send(ue.user_data(ue.check_downlink(packet)))  # the test loop
        elif name == "manage_keys_request":
            ue.answer_manage_keys(packet)
        elif name == "session_terminate_request":
            ue.check_downlink(packet)
            ue.send_protected("session_terminate_response", [])
            ue.session = None
        elif name in ("message_reject", "session_terminate_response"):
            ue.check_downlink(packet)
            ue.session = None
        elif name is None:
            ue.check_downlink(packet)
            ue.send_protected("message_reject", reject_tlvs(ue.layout, "unknown_command", packet.command))
