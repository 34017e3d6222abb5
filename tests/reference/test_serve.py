"""`best-conformance serve hse|emks` as a plugfest peer: a real process, real clients, a clean stop."""

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from conformance.keyserver.certs import CertificateDirectory
from conformance.keyserver.client import KeyServerClient
from conformance.profile import load_profile
from conformance.roles.ue import Credentials, Ue

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
EXE = str(Path(sys.executable).with_name("best-conformance"))


def serve(kind, tmp_path, *args):
    """Start `serve`, return the process and its banner; certificates go to a temporary cache directory."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    process = subprocess.Popen(
        [EXE, "serve", kind, "--rest-port", "0", *args], stderr=subprocess.PIPE, text=True, env=env
    )
    for line in process.stderr:  # log lines may come first; the banner says where it listens
        if line.startswith("reference") and "listening on" in line:
            return process, line
    raise AssertionError(f"serve {kind} exited without a banner: {process.wait()}")


def stop(process):
    process.send_signal(signal.SIGINT)
    _, log = process.communicate(timeout=10)
    assert process.returncode == 0, log
    return log


def test_serve_hse_answers_a_ue_and_logs_each_exchange(tmp_path):
    profile = load_profile(PROFILES / "reference-hse.yaml")
    process, banner = serve("hse", tmp_path, "--port", "0")
    try:
        match = re.search(r"UDP ([\d.]+):(\d+); key server (https://\S+);", banner)
        assert match, banner
        sub = profile.pixit.subscribers[0]
        with Ue(
            profile.binding,
            Credentials.from_subscriber(sub),
            (match[1], int(match[2])),
            snn=profile.pixit.serving_network_name,
            eas_id="eas.example.com",
        ) as ue:
            assert ue.start().checksum_ok
    finally:
        log = stop(process)
    assert "<- 127.0.0.1" in log and "session_request" in log and "-> 127.0.0.1" in log and "session_start" in log


def test_serve_emks_registers_an_emse_with_certificates_from_the_cache(tmp_path):
    profile = load_profile(PROFILES / "reference-emks.yaml")
    process, banner = serve("emks", tmp_path)
    try:
        match = re.search(r"key server (https://\S+); certificates in (\S+)\.", banner)
        assert match, banner
        assert Path(match[2]).is_relative_to(tmp_path)  # never in the repository or the real home
        certs = CertificateDirectory(match[2])
        pair = certs.client("emse-1")
        with KeyServerClient(match[1], profile.binding, ca=certs.ca, cert=pair.cert, key=pair.key) as emse:
            assert emse.register("emse-1")
    finally:
        log = stop(process)
    assert "POST" in log


def test_serve_refuses_a_profile_of_another_kind(tmp_path):
    done = subprocess.run(
        [EXE, "serve", "emks", "--profile", str(PROFILES / "reference-hse.yaml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "sut.kind is 'hse', not 'emks'" in done.stderr


def test_serve_emks_provisions_what_the_trigger_appends_to_its_inbox(tmp_path):
    """The provision trigger a lab's profile names for `serve emks --provision-inbox F --pid-file P`:
    `echo {ue_id} {rand} >> F && kill -USR1 $(cat P)`; the new run's key is then served."""
    import shlex
    import time

    from conformance.crypto.keys import KeyHierarchy, key_identifier
    from conformance.crypto.milenage import Milenage
    from conformance.engine.peers import shell_trigger

    profile = load_profile(PROFILES / "reference-emks.yaml")
    inbox, pid_file = tmp_path / "provision.inbox", tmp_path / "emks.pid"
    process, banner = serve("emks", tmp_path, "--provision-inbox", str(inbox), "--pid-file", str(pid_file))
    try:
        match = re.search(r"key server (https://\S+); certificates in (\S+)\.", banner)
        certs = CertificateDirectory(match[2])
        pair = certs.client("emse-1")
        sub = profile.pixit.subscribers[0]
        rand = bytes.fromhex("00112233445566778899aabbccddeeff")
        command = (
            f"echo {{ue_id}} {{rand}} >> {shlex.quote(str(inbox))} && kill -USR1 $(cat {shlex.quote(str(pid_file))})"
        )
        shell_trigger(command, 5)(ue_id=sub.imsi, rand=rand.hex())
        binding = profile.binding
        _, ck, ik, _ = Milenage(sub.k, sub.opc).f2345(rand)
        hierarchy = KeyHierarchy.from_binding(binding)
        derived, _ = hierarchy.derive_all(ck=ck, ik=ik, key_agreement="umts", inputs={"emse_id": b"emse-1"})
        key_id = key_identifier(binding["keys.key_identifier.scheme"], binding["keys.key_identifier.bits"], rand=rand)
        with KeyServerClient(match[1], binding, ca=certs.ca, cert=pair.cert, key=pair.key) as emse:
            session = emse.register("emse-1")
            deadline = time.monotonic() + 5
            while True:  # the trigger returns at once; the EMKS provisions on its signal
                try:
                    assert emse.fetch_key(session, sub.imsi, key_id) == derived["e2m_key"].value
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
    finally:
        log = stop(process)
    assert f"provisioned {sub.imsi} RAND {rand.hex()}" in log


def test_a_port_in_use_is_named_and_nothing_is_left_listening(tmp_path):
    """One line naming the port, exit 2, no stray key server and no pid file."""
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    port = busy.getsockname()[1]
    try:
        done = subprocess.run(
            [EXE, "serve", "hse", "--port", str(port), "--rest-port", "0", "--pid-file", str(tmp_path / "hse.pid")],
            capture_output=True, text=True, timeout=60, env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)},
        )  # fmt: skip
    finally:
        busy.close()
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"best-conformance: error: cannot listen on UDP 127.0.0.1:{port}: Address already in use; "
        "give another port (--port, --rest-port)"
    )
    assert not (tmp_path / "hse.pid").exists()


def test_the_pid_file_goes_with_the_process(tmp_path):
    pid_file = tmp_path / "emks.pid"
    process, _ = serve("emks", tmp_path, "--pid-file", str(pid_file))
    assert pid_file.read_text().strip() == str(process.pid)
    stop(process)
    assert not pid_file.exists()
