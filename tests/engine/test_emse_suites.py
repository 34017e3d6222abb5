"""The shipped EMSE suites (TR 33.863 Solution #10, seed 002 6.x.2.2 and 6.x.2.3), proved on the reference EMSE.

- They lint clean, there are at least 15, and each cites seed 002 or the TLS profile.
- Against the conformant embedded reference EMSE every case passes; with each EMSE fault of the catalogue on,
  the cases EMSE_FAULT_CATCHERS names do not pass.
- A case's evidence holds the DTLS datagrams (its pcap), the key-server requests the SUT made (its trace),
  and a key log with which real tshark decrypts the DTLS sessions of the pcap.
- `best-conformance run` passes against the reference EMSE embedded, and out of process (`serve emse`, with
  the PIXIT's register/deregister triggers as signals).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("mbedtls", reason="python-mbedtls has wheels for CPython 3.11 and 3.12 only")

from conformance.embedded import embedded_reference
from conformance.engine.lint import load_suite
from conformance.engine.model import suite_dir
from conformance.engine.results import Result, Verdict
from conformance.engine.runner import run_case
from conformance.faults import CATALOGUE
from conformance.profile import load_profile
from conformance.selftest import EXPECTED_CATCHERS
from tests.engine import assert_fault_caught, explain, run_against_reference

ROOT = Path(__file__).resolve().parents[2]
PROFILE_FILE = ROOT / "profiles" / "reference-emse.yaml"
CASES, LINT = load_suite(suite_dir("emse").glob("*.yaml"))
BY_ID = {case.id: case for case in CASES}

EMSE_FAULT_CATCHERS = EXPECTED_CATCHERS["emse"]  # fault -> cases that must not pass with it on


@pytest.fixture(scope="module")
def profile():
    return load_profile(PROFILE_FILE)


@pytest.fixture(scope="module")
def conformant_results(profile, tmp_path_factory) -> dict[str, Result]:
    return run_against_reference(profile, CASES, tmp_path_factory.mktemp("conformant-emse"))


def test_emse_suites_lint_clean_and_cite_their_clauses():
    assert LINT.errors == []
    assert len(CASES) >= 15 and {case.sut for case in CASES} == {"emse"}
    for case in CASES:
        assert any(ref.startswith(("seed 002 6.x.2", "TS 33.210 6.2")) for ref in case.refs), case.id


def test_lint_knows_the_emse_verbs(tmp_path):
    suite = tmp_path / "bad.yaml"
    suite.write_text(
        "- id: X-1\n  title: t\n  refs: ['seed 002 6.x.2.3']\n  requirements: [SOL10-EMSE-004]\n  level: shall\n"
        "  negative: true\n  applies: {sut: emse}\n  steps:\n    - emks: registrations\n"
        "    - emks: key_request\n      check: {colour: red}\n    - dtls: handshake\n      with: {psk: own, hue: 1}\n"
        "    - dtls: handshake\n      with: {expect: maybe}\n",
        encoding="utf-8",
    )
    text = "\n".join(load_suite([suite])[1].errors)
    assert "emks: unknown action 'registrations'" in text and "emks: unknown matcher 'colour'" in text
    assert "dtls: unknown option 'hue'" in text and "dtls: option expect: unknown value 'maybe'" in text
    assert "a negative case must expect the SUT's reaction" in text  # nothing above is refused or absent


@pytest.mark.parametrize("case_id", sorted(BY_ID))
def test_conformant_reference_emse_passes(conformant_results, case_id):
    result = conformant_results[case_id]
    assert result.verdict is Verdict.PASS, explain(result)


def test_emse_fault_catchers_cover_every_emse_fault():
    assert set(EMSE_FAULT_CATCHERS) == {f.name for f in CATALOGUE if f.component == "emse"}
    for fault, ids in EMSE_FAULT_CATCHERS.items():
        assert ids and set(ids) <= set(BY_ID), fault


@pytest.mark.parametrize("fault", sorted(EMSE_FAULT_CATCHERS))
def test_emse_fault_is_caught(profile, tmp_path, fault):
    assert_fault_caught(profile, BY_ID, EMSE_FAULT_CATCHERS[fault], fault, tmp_path)


def test_a_case_keeps_dtls_datagrams_key_requests_and_a_key_log(profile, tmp_path):
    with embedded_reference(profile) as (running, certs):
        result = run_case(BY_ID["EMSE-KEY-002"], running, tmp_path, certs=certs)
    assert result.verdict is Verdict.PASS, explain(result)
    dtls = [item for item in result.trace if "dtls" in item]
    requests = [item["key_server"] for item in result.trace if "key_server" in item]
    assert dtls[0]["dtls"][0]["messages"] == ["ClientHello"]
    assert any(record.get("encrypted") for item in dtls for record in item["dtls"])
    assert [r["route"] for r in requests] == ["ue_key"] and requests[0]["identity"] == "emse-1"
    keylog = tmp_path / "keylogs" / "EMSE-KEY-002.keys"
    assert keylog.read_text().startswith("CLIENT_RANDOM ")
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed: the key log is only checked against real Wireshark")
    port = running.emse_endpoint[1]
    out = subprocess.run(
        ["tshark", "-r", result.pcap, "-d", f"udp.port=={port},dtls", "-o", f"tls.keylog_file:{keylog}",
         "-T", "fields", "-e", "dtls.handshake.type"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert out.replace("\n", ",").split(",").count("20") == 2  # both Finished decrypted


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conformance.cli", "run", *args, "--reports", str(tmp_path / "reports")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def test_best_conformance_run_on_the_reference_emse_exits_0(tmp_path):
    done = _run(["--profile", str(PROFILE_FILE), "--reference"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{len(CASES)} cases: {len(CASES)} pass" in " ".join(done.stderr.split())


def test_an_emse_served_out_of_process_passes_with_signal_triggers(tmp_path):
    """The harness's EMKS comes up with the run; the served EMSE, started first, registers when the first case
    fires the register trigger (SIGUSR1), and deregisters on SIGUSR2."""
    dtls_port, emks_port, pid_file = _free_udp_port(), _free_tcp_port(), tmp_path / "emse.pid"
    profile = PROFILE_FILE.read_text().replace("port: 5684", f"port: {dtls_port}")
    profile = profile.replace("127.0.0.1:8445", f"127.0.0.1:{emks_port}")
    profile = profile.replace(
        "  # triggers:",
        f"  triggers:\n    register: kill -USR1 $(cat {pid_file})\n    deregister: kill -USR2 $(cat {pid_file})\n  #",
    )
    (tmp_path / "emse.yaml").write_text(profile)
    server = subprocess.Popen(
        [sys.executable, "-m", "conformance.cli", "serve", "emse", "--profile", str(tmp_path / "emse.yaml"),
         "--pid-file", str(pid_file)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pid_file.exists(), "serve emse did not start"
        done = _run(["--profile", str(tmp_path / "emse.yaml"), "--no-reference"], tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"{len(CASES)} cases: {len(CASES)} pass" in " ".join(done.stderr.split())
    finally:
        os.kill(server.pid, signal.SIGINT)
        server.wait(timeout=20)
