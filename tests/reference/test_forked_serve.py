"""`serve` forked from the warm fork server (forked_serve): the same command, its own process, as the selftest
starts its many served references."""

import os
from pathlib import Path

from conformance import forked_serve
from conformance.keyserver.client import KeyServerClient
from conformance.profile import load_profile, shipped_profile
from conformance.reference.process import ServedReference

PROFILES = Path(__file__).resolve().parents[2] / "profiles"


def test_a_forked_emks_is_its_own_process_serves_the_labs_profile_and_stops_cleanly(tmp_path):
    served = ServedReference("emks", tmp_path, shipped_profile("reference-emks.yaml"), launch=forked_serve.launch)
    served.start()
    try:
        pid = int(served.pid_file.read_text())
        assert pid == served.process.pid and pid != os.getpid()  # the pid file (the triggers' target) names it
        lab = load_profile(served.write_profile(served.profile_data()))
        tls = lab.profile.tls
        folder = served.lab
        with KeyServerClient(
            served.key_server, lab.binding, ca=folder / tls.ca, cert=folder / tls.cert, key=folder / tls.key
        ) as emse:
            assert emse.register(served.identities[0])
    finally:
        code = served.stop()
    assert code == 0 and not served.pid_file.exists()
    assert "POST" in served.log_text()  # the exchange log goes to the reference's log, as a command's stderr


def test_a_forked_serve_given_bad_input_exits_2_naming_it_as_the_command_does(tmp_path):
    log = tmp_path / "serve.log"
    args = ["serve", "emks", "--profile", str(PROFILES / "reference-hse.yaml")]
    process = forked_serve.launch(args, log, {})
    assert process.wait(30) == 2
    assert "sut.kind is 'hse', not 'emks'" in log.read_text()
