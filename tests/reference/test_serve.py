"""`best-conformance serve hse` as a plugfest peer: a real process, a real UE, a clean stop."""

import re
import signal
import subprocess
import sys
from pathlib import Path

from conformance.profile import load_profile
from conformance.roles.ue import Credentials, Ue

PROFILE = load_profile(Path(__file__).resolve().parents[2] / "profiles" / "reference-hse.yaml")


def test_serve_hse_answers_a_ue_and_logs_each_exchange():
    exe = Path(sys.executable).with_name("best-conformance")
    process = subprocess.Popen([str(exe), "serve", "hse", "--port", "0"], stderr=subprocess.PIPE, text=True)
    try:
        banner = process.stderr.readline()
        match = re.search(r"listening on UDP ([\d.]+):(\d+)", banner)
        assert match, banner
        sub = PROFILE.pixit.subscribers[0]
        with Ue(
            PROFILE.binding,
            Credentials.from_subscriber(sub),
            (match[1], int(match[2])),
            snn=PROFILE.pixit.serving_network_name,
            eas_id="eas.example.com",
        ) as ue:
            assert ue.start().checksum_ok
    finally:
        process.send_signal(signal.SIGINT)
        _, log = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "<- 127.0.0.1" in log and "session_request" in log and "-> 127.0.0.1" in log and "session_start" in log
