"""The engine end to end: linting, verdicts with evidence, the pytest plugin through `best-conformance run`,
and SUTs that do not behave (silent, garbage) without the run breaking."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from conformance.engine.lint import load_suite
from conformance.engine.model import suite_dir
from conformance.engine.results import Result, ResultsFile, Verdict, read_results
from conformance.engine.runner import run_case
from conformance.profile import load_profile

ROOT = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).with_name("best-conformance"))
PROFILE = ROOT / "profiles" / "reference-hse.yaml"


def write(tmp_path, text, name="cases.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_lint_names_file_and_line_for_each_problem(tmp_path):
    path = write(
        tmp_path,
        """
- id: X-1
  title: unknown verb and matcher
  refs: ["TS 33.163 4.3.2"]
  level: shall
  applies: {sut: hse}
  steps:
    - dance: tango
    - expect: session_start
      check: {sparkles: true}
- id: X-2
  title: missing refs and a negative case without a reaction
  refs: []
  level: must
  negative: true
  applies: {sut: hse}
  steps:
    - send: session_request
- id: X-1
  title: duplicate id
  refs: ["TS 33.163 4.3.2"]
  level: shall
  applies: {sut: hse}
  steps:
    - send: session_request
""",
    )
    _, report = load_suite([path])
    text = "\n".join(report.errors)
    for expected in (
        f"{path}:8: case X-1: unknown verb 'dance'",
        f"{path}:9: case X-1: expect: unknown matcher 'sparkles'",
        f"{path}:11: case X-2: refs must name at least one spec clause",
        f"{path}:11: case X-2: level must be one of shall, should, may",
        f"{path}:19: case id X-1 is also used at {path}:2",
    ):
        assert expected in text, (expected, text)
    assert "a negative case must expect" not in text  # X-2 is dropped (bad level) before that check


def test_negative_case_without_reaction_is_refused(tmp_path):
    path = write(
        tmp_path,
        """
- id: X-3
  title: negative without reaction
  refs: ["TS 33.163 4.3.2"]
  requirements: [BEST-SR-006]
  level: shall
  negative: true
  applies: {sut: hse}
  steps:
    - send: session_request
""",
    )
    _, report = load_suite([path])
    assert report.errors == [
        f"{path}:2: case X-3: a negative case must expect the SUT's reaction "
        "(expect or from_ue: message_reject or silence, an EAS status, a refused DTLS handshake or no key request)"
    ]


def test_shipped_suites_lint_clean():
    cases, report = load_suite(suite_dir("hse").glob("*.yaml"))
    assert report.errors == [] and cases


def test_results_stream_and_a_torn_last_line_is_ignored(tmp_path):
    results = ResultsFile(tmp_path / "results.jsonl")
    results.append(Result("C-1", "t", "shall", ["TS 33.163 4.3.2"], Verdict.PASS, observed=b"\x01"))
    with open(results.path, "a") as out:
        out.write('{"case": "C-2", "verd')  # killed mid-write
    assert [r["case"] for r in read_results(results.path)] == ["C-1"]


@pytest.fixture
def silent_sut():
    """A UDP port where nothing ever answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def garbage_sut():
    """A UDP server that answers every datagram with bytes that are not EMSDP."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    stop = threading.Event()

    def serve():
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                _, addr = sock.recvfrom(2048)
                sock.sendto(b"\xff\x00garbage", addr)
            except TimeoutError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join()
    sock.close()


def _profile_at(port):
    data = yaml.safe_load(PROFILE.read_text())
    data["endpoints"] = {"hse": {"host": "127.0.0.1", "port": port}}
    data["pixit"]["reply_timeout"] = 0.3
    return load_profile(data)


@pytest.mark.parametrize("sut", ["silent_sut", "garbage_sut"])
def test_a_misbehaving_sut_gets_verdicts_with_evidence(request, tmp_path, sut):
    profile = _profile_at(request.getfixturevalue(sut))
    cases, _ = load_suite(suite_dir("hse").glob("*.yaml"))
    for case in cases[:6]:
        result = run_case(case, profile, tmp_path)
        assert result.verdict in (Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.NOT_APPLICABLE), (case.id, result)
        if result.verdict is not Verdict.NOT_APPLICABLE:
            assert result.reason and Path(result.pcap).exists()
            assert result.trace, "the exchange must be in the evidence"


def run_cli(tmp_path, *args, timeout=180):
    return subprocess.run(
        [EXE, "run", "--reports", str(tmp_path), *args], capture_output=True, text=True, timeout=timeout, cwd=tmp_path
    )


def test_run_against_the_embedded_reference_writes_every_report(tmp_path):
    done = run_cli(tmp_path)
    assert done.returncode == 0, done.stderr
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    results = read_results(run_dir / "results.jsonl")
    assert results and {r["verdict"] for r in results} <= {"pass", "not applicable", "not run"}
    assert all("binding" in r["reason"] for r in results if r["verdict"] == "not run")
    assert "decision: PASS" in done.stderr
    junit = (run_dir / "junit.xml").read_text()
    assert "testsuite" in junit and results[0]["case"] in junit
    allure = list((run_dir / "allure-results").iterdir())
    assert any(p.name.endswith("-result.json") for p in allure)
    assert any(p.suffix == ".pcap" for p in allure)  # the per-case pcap travels with the Allure result
    report = (run_dir / "report.html").read_text()
    assert 'id="verdicts"' in report and results[0]["case"] in report
    assert len(list((run_dir / "pcaps").glob("*.pcap"))) == len([r for r in results if r["pcap"]])


def test_run_exit_code_says_some_case_failed(tmp_path):
    done = run_cli(tmp_path, "--fault", "bad_autn_mac")
    assert done.returncode == 1, done.stderr
    assert "Cases that did not pass" in done.stderr and "mac_failure" in done.stderr


def test_run_with_a_broken_profile_is_a_usage_error(tmp_path):
    bad = write(tmp_path, "sut: {kind: hse}\n", "bad.yaml")
    done = run_cli(tmp_path, "--profile", str(bad))
    assert done.returncode == 2 and "pixit: required field missing" in done.stderr


def test_a_killed_run_keeps_the_cases_it_finished(tmp_path):
    env = {**os.environ}
    process = subprocess.Popen(
        [EXE, "run", "--reports", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 60
    results_file = None
    while time.time() < deadline:
        found = list(tmp_path.glob("*/results.jsonl"))
        if found and found[0].read_text().count("\n") >= 1:
            results_file = found[0]
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert results_file is not None
    kept = read_results(results_file)
    assert kept and all(json.dumps(r) for r in kept)


def test_list_and_explain(tmp_path):
    listed = subprocess.run([EXE, "list"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and "HSE-SR-001" in listed.stdout
    explained = subprocess.run([EXE, "explain", "HSE-SR-001"], capture_output=True, text=True, timeout=60)
    assert explained.returncode == 0 and "refs: TS 33.163" in explained.stdout and "check autn" in explained.stdout
    missing = subprocess.run([EXE, "explain", "NOPE-1"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no case 'NOPE-1'" in missing.stderr


def test_parallel_workers_share_one_run_folder(tmp_path):
    """-n 2: each xdist worker tests its own embedded reference and writes into the same results.jsonl."""
    done = run_cli(tmp_path, "-n", "2", "-k", "SR-00")
    assert done.returncode == 1, done.stderr  # a partial run never certifies: the decision is not pass
    assert "9 cases: 9 pass" in done.stderr and "decision: FAIL" in done.stderr and "not run" in done.stderr
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    results = read_results(run_dir / "results.jsonl")
    assert len(results) >= 2 and len({r["case"] for r in results}) == len(results)
    assert (run_dir / "report.html").exists()
