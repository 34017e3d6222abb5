"""`best-conformance serve hse|emks` as a plugfest peer: a real process, real clients, a clean stop."""

import os
import re
import signal
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
