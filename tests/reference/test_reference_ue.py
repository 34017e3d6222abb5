"""The reference UE against a scripted HSE over real UDP: a full session, what each UE fault changes on the wire,
and `serve ue` as its own process driven through its command inbox.

The scripted HSE is built here from crypto/ and emsdp/ pieces (AKA vectors, the HSE configuration, the session
keys, MessageSecurity), so the test checks the reference UE against the protocol, not against another role.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conformance.crypto.aka import AuthError, generate_vector, resynchronise, sqn_bytes
from conformance.crypto.keys import KeyHierarchy
from conformance.crypto.milenage import Milenage
from conformance.crypto.protect import DOWNLINK, UPLINK
from conformance.emsdp import hse_side
from conformance.emsdp.codec import Codec
from conformance.emsdp.fast import Message
from conformance.emsdp.secure import MessageSecurity
from conformance.emsdp.ue_side import request_checksum, session_keys
from conformance.emsdp.values import decode_hse_config, tlv_values
from conformance.faults import BY_NAME
from conformance.profile import load_profile, shipped_profile
from conformance.reference.process import cli_command
from conformance.reference.services import ReferenceUeService
from conformance.reference.ue_faults import FAULTS

PROFILE = load_profile(shipped_profile("reference-ue.yaml"))
SILENCE = 0.3  # s: the window in which a UE that reacts does so on loopback


class ScriptedHse:
    """An HSE that does exactly what the test says, one message at a time, on its own UDP socket."""

    def __init__(self, profile: Any = PROFILE, port: int = 0):
        self.profile, self.binding = profile, profile.binding
        self.codec = Codec(self.binding)
        self.layout = self.codec.layout
        self.security = MessageSecurity(self.codec, self.binding)
        self.hierarchy = KeyHierarchy.from_binding(self.binding)
        subscriber = profile.pixit.subscribers[0]
        self.milenage = Milenage(subscriber.k, subscriber.opc)
        self.amf = subscriber.amf
        self.step = 1 << self.binding["aka.sqn.ind_bits"]
        self.usim_sqn = int.from_bytes(subscriber.sqn, "big")  # the USIM's SQN_MS at start: never fresh again
        self.sqn = self.usim_sqn  # the HE's: the next fresh one is a step above
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.address = self.sock.getsockname()
        self.ue: tuple[str, int] | None = None
        self.session_id, self.keys, self.scheme = 5, {}, self.layout.default_scheme
        self.cp_counter = self.up_counter = 0
        self.config: dict[str, Any] = {}

    def close(self) -> None:
        self.sock.close()

    def receive(self, timeout: float = 2.0) -> Message | None:
        self.sock.settimeout(timeout)
        try:
            data, self.ue = self.sock.recvfrom(65535)
        except TimeoutError:
            return None
        return self.codec.decode(data, self.scheme)

    def expect(self, command: str | None) -> Message:
        """The UE's next message, which must be `command` (None: user data)."""
        packet = self.receive()
        assert packet is not None, f"the UE sent no {command or 'user data'}"
        got = "up" if packet.plane == "up" else packet.command_name
        assert got == (command or "up"), self.codec.describe(packet)
        return packet

    def silent(self, window: float = SILENCE) -> bool:
        return self.receive(window) is None

    def send(self, message: Message | bytes) -> None:
        assert self.ue is not None
        self.sock.sendto(bytes(message), self.ue)

    # ---- procedures --------------------------------------------------------------------------------

    def vector(self, *, stale: bool = False) -> Any:
        """A fresh vector, or with `stale` one whose SQN the USIM already had (out of range: synch failure)."""
        if not stale:
            self.sqn += self.step
        sqn = self.usim_sqn if stale else self.sqn
        return generate_vector(self.milenage, os.urandom(16), sqn_bytes(sqn), self.amf)

    def session_start(
        self, request: Message, *, bad_mac: bool = False, stale: bool = False, service: str = "up_integrity"
    ) -> Any:
        """Answer a Session Request (5G AKA); the keys are the session's from now on."""
        vector = self.vector(stale=stale)
        autn = vector.autn[:-1] + bytes([vector.autn[-1] ^ 1]) if bad_mac else vector.autn
        config = hse_side.hse_config(
            self.layout, self.binding, service=service, mode="ue_to_hse", key_agreement="5g_aka", scheme=self.scheme
        )
        self.config = decode_hse_config(self.layout, config)
        self.keys = self._keys(vector, vector.autn)
        checksum = request_checksum(self.binding, self.security, bytes(request), self.keys)
        checksum = checksum[: self.binding["emsdp.request_checksum.bytes"]]
        tlvs = [("rand", vector.rand), ("autn", autn), ("hse_config", config), ("request_checksum", checksum)]
        self.cp_counter = self.up_counter = 0
        self.send(self.codec.cp("session_start", tlvs, key_id=0, counter=1, session_id=self.session_id))
        return vector

    def _keys(self, vector: Any, autn: bytes) -> dict[str, bytes]:
        pixit = self.profile.pixit
        return session_keys(
            self.hierarchy,
            rand=vector.rand,
            autn=autn,
            config=self.config,
            ck=vector.ck,
            ik=vector.ik,
            snn=pixit.serving_network_name,
            eas_id=pixit.eas_id,
            sn_id=pixit.serving_network_id,
        )

    def verifies(self, packet: Message, keys: dict[str, bytes] | None = None) -> bool:
        return self.security.verify(packet, keys or self.keys, UPLINK)

    def protected(self, command: str, tlvs: list[tuple[str, bytes]], *, key_id: int = 1) -> Message:
        self.cp_counter += 1
        return self.security.protected_cp(
            command,
            tlvs,
            self.keys,
            session_id=self.session_id,
            counter=self.cp_counter,
            scheme=self.scheme,
            key_id=key_id,
            direction=DOWNLINK,
        )

    def user_data(self, data: bytes, *, key_id: int = 1, counter: int | None = None) -> Message:
        if counter is None:
            self.up_counter += 1
        return self.security.protected_up(
            data,
            self.keys,
            session_id=self.session_id,
            counter=self.up_counter if counter is None else counter,
            scheme=self.scheme,
            key_id=key_id,
            direction=DOWNLINK,
            cipher=self.config.get("service") == "up_confidential",
        )

    def deciphered(self, packet: Message) -> bytes:
        if self.config.get("service") != "up_confidential":
            return packet.data
        return self.security.crypt(
            packet.data, self.keys, "up", packet.session_id, packet.counter, packet.scheme, UPLINK
        )

    def open_session(self, ue: ReferenceUeService, **options: Any) -> tuple[Message, Any]:
        """Trigger a session, answer it, and return the UE's Start Confirmation and the vector."""
        ue.triggers["session"]()
        vector = self.session_start(self.expect("session_request"), **options)
        return self.expect("session_start_confirmation"), vector


def running(faults: tuple[str, ...] = (), profile: Any = PROFILE) -> tuple[ScriptedHse, ReferenceUeService]:
    hse = ScriptedHse(profile)
    ue = ReferenceUeService(profile, frozenset(faults), hse=hse.address)
    ue.__enter__()
    return hse, ue


@pytest.fixture
def pair(request):
    made: list[tuple[ScriptedHse, ReferenceUeService]] = []

    def make(*faults: str) -> tuple[ScriptedHse, ReferenceUeService]:
        made.append(running(faults))
        return made[-1]

    yield make
    for hse, ue in made:
        ue.__exit__(None, None, None)
        hse.close()


def cause(layout: Any, packet: Message) -> str:
    return layout.cause_names()[tlv_values(packet)["cause"][0]]


# ---- a conformant UE: a whole session ------------------------------------------------------------------------


def test_a_full_session_request_start_data_loop_manage_keys_terminate(pair):
    hse, ue = pair()
    ue.triggers["session"]()
    request = hse.expect("session_request")
    assert (request.session_id, request.key_id, request.counter, request.rfu) == (0, 0, 0, 0)
    tlvs = tlv_values(request)
    assert "suci" in tlvs and "imsi" not in tlvs  # PICS claim SUCI, the PIXIT has profile A's public key
    assert {"ue_config", "enterprise_setup", "serving_network"} <= set(tlvs)
    vector = hse.session_start(request)
    confirmation = hse.expect("session_start_confirmation")
    assert confirmation.key_id == 1 and hse.verifies(confirmation)
    assert tlv_values(confirmation)["res"] == vector.xres

    ue.triggers["send_data"](data="68656c6c6f")
    uplink = hse.expect(None)
    assert hse.verifies(uplink) and hse.deciphered(uplink) == b"hello"
    hse.send(hse.user_data(b"ping"))  # downlink, looped back (PICS test_loop)
    looped = hse.expect(None)
    assert hse.verifies(looped) and hse.deciphered(looped) == b"ping"

    renewal = hse.vector()
    hse.send(hse.protected("manage_keys_request", [("rand", renewal.rand), ("autn", renewal.autn)]))
    response = hse.expect("manage_keys_response")
    assert hse.verifies(response) and tlv_values(response)["res"] == renewal.xres
    ue.triggers["send_data"](data="00")
    assert hse.verifies(hse.expect(None))  # the new keys wait for the next session

    ue.triggers["manage_keys"]()
    assert hse.verifies(hse.expect("manage_keys_request"))
    ue.triggers["terminate"]()
    assert hse.verifies(hse.expect("session_terminate_request"))
    hse.send(hse.protected("session_terminate_response", []))
    time.sleep(0.05)
    ue.triggers["send_data"](data="00")  # no session any more: the UE starts one for its data
    again = hse.expect("session_request")
    assert (again.session_id, again.key_id, again.counter) == (0, 0, 0)
    hse.session_start(again)
    assert hse.verifies(hse.expect("session_start_confirmation"))
    assert hse.deciphered(hse.expect(None)) == b"\x00"  # the data waited for its session
    assert hse.silent() and ue.died_at is None


def test_a_confidential_session_ciphers_uplink_and_the_hse_terminates_it(pair):
    hse, ue = pair()
    hse.open_session(ue, service="up_confidential")
    ue.triggers["send_data"](data="68656c6c6f")
    uplink = hse.expect(None)
    assert uplink.data != b"hello" and hse.deciphered(uplink) == b"hello"
    hse.send(hse.protected("session_terminate_request", []))
    assert hse.verifies(hse.expect("session_terminate_response"))


def test_a_wrong_autn_mac_is_rejected_and_an_sqn_out_of_range_answered_with_auts(pair):
    hse, ue = pair()
    ue.triggers["session"]()
    hse.session_start(hse.expect("session_request"), bad_mac=True)
    reject = hse.expect("message_reject")
    assert cause(hse.layout, reject) == "mac_failure" and reject.key_id == 0
    ue.triggers["session"]()
    vector = hse.session_start(hse.expect("session_request"), stale=True)
    auts = hse.expect("session_start_confirmation")
    assert auts.key_id == 0 and auts.session_id == hse.session_id
    sqn_ms = resynchronise(hse.milenage, vector.rand, tlv_values(auts)["auts"], bytes(2))
    assert int.from_bytes(sqn_ms, "big") == hse.usim_sqn  # no AKA run succeeded yet


def test_downlink_forged_replayed_or_under_a_stale_key_id_is_discarded(pair):
    hse, ue = pair()
    hse.open_session(ue)
    message = hse.user_data(b"one")
    hse.send(message)
    assert hse.deciphered(hse.expect(None)) == b"one"
    hse.send(message)  # replayed
    forged = bytearray(bytes(hse.user_data(b"two")))
    forged[-1] ^= 1
    hse.send(bytes(forged))
    hse.send(hse.user_data(b"three", key_id=2))
    assert hse.silent()
    hse.send(hse.user_data(b"four"))  # and the UE still serves
    assert hse.deciphered(hse.expect(None)) == b"four"


def test_an_unknown_command_is_rejected(pair):
    hse, ue = pair()
    hse.open_session(ue)
    hse.send(hse.codec.cp(0x7E, [], key_id=0, counter=0, session_id=hse.session_id))
    assert cause(hse.layout, hse.expect("message_reject")) == "unknown_command"


# ---- each fault changes what it claims on the wire -----------------------------------------------------------


def _request(hse: ScriptedHse, ue: ReferenceUeService) -> Message:
    ue.triggers["session"]()
    return hse.expect("session_request")


def _answer_to_bad_mac(hse: ScriptedHse, ue: ReferenceUeService) -> str:
    hse.session_start(_request(hse, ue), bad_mac=True)
    return _next_command(hse)


def _next_command(hse: ScriptedHse) -> str:
    packet = hse.receive()
    assert packet is not None
    return f"{packet.command_name} key_id={packet.key_id}"


def _answer_to_stale_sqn(hse: ScriptedHse, ue: ReferenceUeService) -> str:
    hse.session_start(_request(hse, ue), stale=True)
    return _next_command(hse)


def _auts_verifies(hse: ScriptedHse, ue: ReferenceUeService) -> bool:
    vector = hse.session_start(_request(hse, ue), stale=True)
    try:
        resynchronise(hse.milenage, vector.rand, tlv_values(hse.expect("session_start_confirmation"))["auts"], bytes(2))
    except AuthError:
        return False
    return True


def _res_right(hse: ScriptedHse, ue: ReferenceUeService) -> bool:
    confirmation, vector = hse.open_session(ue)
    return tlv_values(confirmation)["res"] == vector.xres


def _looped(sent: Callable[[ScriptedHse], None]) -> Callable[[ScriptedHse, ReferenceUeService], bool]:
    """Whether the UE loops back what `sent` sends after a first, genuine downlink message."""

    def scenario(hse: ScriptedHse, ue: ReferenceUeService) -> bool:
        hse.open_session(ue)
        hse.send(hse.user_data(b"first"))
        hse.expect(None)
        sent(hse)
        return not hse.silent()

    return scenario


def _replay(hse: ScriptedHse) -> None:
    hse.send(hse.user_data(b"again", counter=hse.up_counter))


def _forge(hse: ScriptedHse) -> None:
    forged = bytearray(bytes(hse.user_data(b"forged")))
    forged[-1] ^= 1
    hse.send(bytes(forged))


def _stale_key_id(hse: ScriptedHse) -> None:
    hse.send(hse.user_data(b"stale", key_id=2))


def _answers_terminate(hse: ScriptedHse, ue: ReferenceUeService) -> bool:
    hse.open_session(ue)
    hse.send(hse.protected("session_terminate_request", []))
    return not hse.silent()


def _uplink_verifies_after_manage_keys(hse: ScriptedHse, ue: ReferenceUeService) -> bool:
    hse.open_session(ue)
    renewal = hse.vector()
    hse.send(hse.protected("manage_keys_request", [("rand", renewal.rand), ("autn", renewal.autn)]))
    hse.expect("manage_keys_response")
    ue.triggers["send_data"](data="00")
    return hse.verifies(hse.expect(None))


def _confidential_uplink(hse: ScriptedHse, ue: ReferenceUeService) -> bytes:
    hse.open_session(ue, service="up_confidential")
    ue.triggers["send_data"](data="68656c6c6f")
    return hse.expect(None).data


def _alive_after_setup(hse: ScriptedHse, ue: ReferenceUeService) -> bool:
    hse.open_session(ue)
    ue.triggers["send_data"](data="00")
    return not hse.silent() and ue.died_at is None


SCENARIOS: dict[str, tuple[Callable[[ScriptedHse, ReferenceUeService], Any], Any]] = {
    # fault -> (what the scripted HSE observes, what it observes with the fault on)
    "ue_rfu_bit_set": (lambda h, u: _request(h, u).rfu, 1),
    "ue_nonzero_session_id": (lambda h, u: _request(h, u).session_id, 1),
    "ue_imsi_despite_suci": (lambda h, u: sorted(set(tlv_values(_request(h, u))) & {"imsi", "suci"}), ["imsi"]),
    "ue_no_serving_network": (lambda h, u: "serving_network" in tlv_values(_request(h, u)), False),
    "ue_ignores_autn_mac": (_answer_to_bad_mac, "session_start_confirmation key_id=1"),
    "ue_no_sqn_check": (_answer_to_stale_sqn, "session_start_confirmation key_id=1"),
    "ue_wrong_auts": (_auts_verifies, False),
    "ue_wrong_res": (_res_right, False),
    "ue_wrong_kdf": (lambda h, u: h.verifies(h.open_session(u)[0]), False),
    "ue_mac_not_verified": (_looped(_forge), True),
    "ue_accepts_replayed_downlink": (_looped(_replay), True),
    "ue_accepts_stale_key_id": (_looped(_stale_key_id), True),
    "ue_ignores_terminate": (_answers_terminate, False),
    "ue_new_keys_at_once": (_uplink_verifies_after_manage_keys, False),
    "ue_plaintext_when_confidential": (_confidential_uplink, b"hello"),
    "ue_hangs_after_setup": (_alive_after_setup, False),
}


def test_every_ue_fault_has_a_behaviour_and_a_scenario():
    ue_faults = {name for name, fault in BY_NAME.items() if fault.component == "ue"}
    assert ue_faults == set(FAULTS) == set(SCENARIOS)
    assert [n for n in ue_faults if BY_NAME[n].dead] == ["ue_hangs_after_setup"]


@pytest.mark.parametrize("fault", sorted(SCENARIOS))
def test_each_fault_changes_the_wire_behaviour_it_claims(pair, fault):
    observe, faulty = SCENARIOS[fault]
    conformant = observe(*pair())
    assert conformant != faulty, f"the conformant UE already shows {fault}'s behaviour"
    assert observe(*pair(fault)) == faulty


def test_the_hung_ue_logged_its_death(pair, caplog):
    hse, ue = pair("ue_hangs_after_setup")
    with caplog.at_level("WARNING", logger="best-conformance.reference"):
        hse.open_session(ue)
    assert ue.died_at is not None and "reference UE died at" in caplog.text
    hse.send(hse.protected("session_terminate_request", []))
    assert hse.silent()


# ---- `serve ue`: its own process, driven through the command inbox ------------------------------------------


def _serve(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 (closed with the process's end)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cli_command("serve", "ue", *args), stdout=log, stderr=log, env=env)


def _banner(tmp_path: Path, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = (tmp_path / "serve.log").read_text(errors="replace")
        if "listening on" in text:
            return text
        assert process.poll() is None, text
        time.sleep(0.05)
    raise AssertionError("no banner")


def test_serve_ue_runs_the_commands_appended_to_its_inbox_on_sigusr1(tmp_path):
    hse = ScriptedHse()
    inbox, pid_file = tmp_path / "commands.inbox", tmp_path / "ue.pid"
    host, port = hse.address
    process = _serve(tmp_path, "--hse", f"{host}:{port}", "--command-inbox", str(inbox), "--pid-file", str(pid_file))
    try:
        assert "reference UE listening on UDP 127.0.0.1:" in _banner(tmp_path, process)
        pid = int(pid_file.read_text())
        with inbox.open("a") as lines:
            lines.write("session\n")
        os.kill(pid, signal.SIGUSR1)
        hse.session_start(hse.expect("session_request"))
        assert hse.verifies(hse.expect("session_start_confirmation"))
        with inbox.open("a") as lines:
            lines.write("not a command\nsend_data 68656c6c6f\n")
        os.kill(pid, signal.SIGUSR1)
        assert hse.deciphered(hse.expect(None)) == b"hello"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        hse.close()
    log = (tmp_path / "serve.log").read_text()
    assert "not a UE command: 'not a command'" in log and not pid_file.exists()


def test_served_ue_lab_profile_triggers_append_to_the_inbox_and_signal(tmp_path):
    from conformance.engine.peers import shell_trigger
    from conformance.reference.process import ServedReference

    with ServedReference("ue", tmp_path, shipped_profile("reference-ue.yaml")) as served:
        assert served.hse is not None
        hse = ScriptedHse(port=served.hse[1])
        try:
            served.start()
            lab = load_profile(served.profile_data())
            assert (lab.endpoints.hse.host, lab.endpoints.hse.port) == served.hse and lab.reference.faults == []
            triggers = {name: shell_trigger(command, 10) for name, command in lab.pixit.triggers.items()}
            assert sorted(triggers) == ["manage_keys", "send_data", "session", "terminate"]
            triggers["session"]()
            hse.session_start(hse.expect("session_request"))
            assert hse.verifies(hse.expect("session_start_confirmation"))
            triggers["send_data"](data="6869")
            assert hse.deciphered(hse.expect(None)) == b"hi"
            triggers["terminate"]()
            assert hse.verifies(hse.expect("session_terminate_request"))
        finally:
            hse.close()
        assert served.died_at is None and "UDP 127.0.0.1:" in served.banner


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--hse", "nowhere"), "--hse takes HOST:PORT"),
        (("--hse", "127.0.0.1:99999"), "--hse takes HOST:PORT"),
        (("--provision-inbox", "x"), "--provision-inbox is for an EMKS"),
        (("--fault", "no_reply"), "unknown fault(s) no_reply"),
    ],
)
def test_serve_ue_refuses_bad_input_with_exit_2(tmp_path, args, message):
    done = subprocess.run(cli_command("serve", "ue", *args), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_serve_hse_refuses_ue_options(tmp_path):
    done = subprocess.run(cli_command("serve", "hse", "--hse", "127.0.0.1:1"), capture_output=True, text=True)
    assert done.returncode == 2 and "--hse is for a UE" in done.stderr, done.stderr


# ---- the embedded path: the reference UE against the harness's own HSE ------------------------------------


def test_embedded_the_reference_ue_talks_to_the_harness_hse_through_its_triggers():
    from conformance.embedded import embedded_reference

    with embedded_reference(PROFILE) as (profile, _certs):
        peers = profile.peers
        assert (profile.endpoints.hse.host, profile.endpoints.hse.port) == peers.hse.address
        assert sorted(peers.triggers) == ["manage_keys", "send_data", "session", "terminate"]
        peers.triggers["session"]()
        assert peers.hse.identity(peers.hse.expect("session_request"))[:2] == (
            "suci",
            PROFILE.pixit.subscribers[0].imsi,
        )
        peers.hse.session_start()
        confirmation = peers.hse.expect("session_start_confirmation")
        assert peers.hse.accept(confirmation) and peers.hse.res_correct(tlv_values(confirmation)["res"])
        peers.triggers["send_data"](data="68656c6c6f")
        uplink = peers.hse.expect("user_data")
        assert peers.hse.accept(uplink) and peers.hse.plaintext(uplink) == b"hello"
        assert profile.died_at() is None
