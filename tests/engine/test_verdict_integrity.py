"""Verdicts a lab can sign (design.md 7a): an absence counts only with a proof of life after it, a refusal only
after a control connection with valid credentials, what the profile lacks is "not run" (never "not applicable"),
the decision is never pass while an applicable shall case did not run, and the path labs use (certificates from
the profile, no embedded shortcut) gives the verdicts the embedded one gives."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from conformance.embedded import embedded_reference
from conformance.engine.lint import load_suite
from conformance.engine.model import LintReport, load_cases, suite_dir
from conformance.engine.results import ResultsFile, Verdict, load_results
from conformance.engine.runner import run_case
from conformance.engine.verbs import VERBS
from conformance.keyserver.certs import CertificateDirectory
from conformance.profile import load_profile
from conformance.reference.services import ReferenceHseService
from conformance.report.compliance import decision
from conformance.run import Collected, conclude

ROOT = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).with_name("best-conformance"))
PROFILE = load_profile(ROOT / "profiles" / "reference-hse.yaml")
HSE = {case.id: case for case in load_suite(suite_dir("hse").glob("*.yaml"))[0]}


def one_case(tmp_path: Path, steps: str, case_id: str = "T-1", negative: bool = True):
    """A case written for the test (not linted, so that the runner's own rules can be seen)."""
    path = tmp_path / f"{case_id}.yaml"
    path.write_text(
        f"- id: {case_id}\n  title: test\n  refs: ['TS 33.163 6.2.2']\n  requirements: [BEST-CNT-002]\n"
        f"  level: shall\n  negative: {str(negative).lower()}\n  applies: {{sut: hse}}\n  steps:\n{steps}"
    )
    report = LintReport()
    (case,) = load_cases([path], report)
    return case, path


def lab_tls(certs: CertificateDirectory, *, clients: bool = True, receiver: bool = True) -> dict:
    """The tls section a lab writes for the reference, with files the reference's CA issued."""
    own, other, server = certs.client("eas.example.com"), certs.client("eas2.example.com"), certs.server()
    tls = {"ca": str(certs.ca), "cert": str(own.cert), "key": str(own.key)}
    if clients:
        tls["clients"] = {"eas2.example.com": {"cert": str(other.cert), "key": str(other.key)}}
    if receiver:
        tls["receiver"] = {"cert": str(server.cert), "key": str(server.key)}
    return tls


def lab_profile(running, certs, **changes):
    """The running reference described as a lab describes its SUT: endpoints and tls files, nothing embedded."""
    data = running.profile.model_dump(mode="json", exclude_none=True)
    data["tls"] = lab_tls(certs)
    data.pop("reference", None)
    data.update(changes)
    return load_profile({k: v for k, v in data.items() if v is not None})


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    with embedded_reference(PROFILE, certs=CertificateDirectory(tmp_path_factory.mktemp("certs"))) as running:
        yield running


# ---- the lab's path ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case_id", ["HSE-EAS-005", "HSE-EAS-013", "HSE-TLS-005", "HSE-TLS-001", "HSE-TLS-003"])
def test_the_lab_path_passes_what_the_embedded_path_passes(reference, tmp_path, case_id):
    """These failed or erred against a conformant HSE reached through a profile: the push receiver had no
    certificate, and `certificate: own` for eas2 presented eas's certificate."""
    running, certs = reference
    result = run_case(HSE[case_id], lab_profile(running, certs), tmp_path)  # no certs=: the lab's path
    assert result.verdict is Verdict.PASS, result.reason


def test_what_the_profile_lacks_is_not_run_naming_the_field(reference, tmp_path):
    running, certs = reference
    without_tls = lab_profile(running, certs, tls=None)
    result = run_case(HSE["HSE-EAS-001"], without_tls, tmp_path)
    assert result.verdict is Verdict.NOT_RUN and "tls.ca" in result.reason
    no_clients = lab_profile(running, certs, tls=lab_tls(certs, clients=False))
    result = run_case(HSE["HSE-TLS-005"], no_clients, tmp_path)
    assert result.verdict is Verdict.NOT_RUN and "tls.clients.eas2.example.com" in result.reason
    assert run_case(HSE["HSE-TLS-004"], no_clients, tmp_path).verdict is Verdict.PASS


# ---- absence needs a proof of life --------------------------------------------------------------------------

FORGED_THEN_GENUINE = """    - start_session: {}
    - send: user_data
      with: {data: "forged", mac: corrupt}
    - expect: silence
      within: 300ms
%s    - send: user_data
      with: {data: "genuine"}
    - expect: user_data
      check: {data: "genuine"}
"""


def test_an_absence_the_sut_did_not_survive_is_inconclusive_never_pass(tmp_path):
    """The SUT goes away right after the silence it was asked for: the silence proves nothing, and the proof
    of life that follows names the step after which it stopped answering."""
    certs = CertificateDirectory(tmp_path / "certs")
    with ReferenceHseService(PROFILE, udp_port=0, rest_port=0, certs=certs) as service:
        data = PROFILE.profile.model_dump(mode="json", exclude_none=True)
        data["endpoints"] = {"hse": {"host": "127.0.0.1", "port": service.hse.address[1]}}
        profile = load_profile(data)
        alive, _ = one_case(tmp_path, FORGED_THEN_GENUINE % "", "T-ALIVE")
        assert run_case(alive, profile, tmp_path).verdict is Verdict.PASS
        dies, _ = one_case(tmp_path, FORGED_THEN_GENUINE % "    - stop_the_sut: {}\n", "T-DIES")
        VERBS["stop_the_sut"] = lambda ctx, args: service.hse.close()
        try:
            result = run_case(dies, profile, tmp_path)
        finally:
            del VERBS["stop_the_sut"]
    assert result.verdict is Verdict.INCONCLUSIVE, result.reason
    assert "the SUT stopped answering after line 12 (expect silence)" in result.reason


def test_an_absence_no_step_proves_is_inconclusive(reference, tmp_path):
    running, _ = reference
    case, _ = one_case(tmp_path, FORGED_THEN_GENUINE.split("%s")[0])
    result = run_case(case, running, tmp_path)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "no later step showed the SUT still serving after line 12 (expect silence)" in result.reason


def test_the_linter_wants_a_proof_of_life_on_the_same_interface(tmp_path):
    _, path = one_case(
        tmp_path,
        FORGED_THEN_GENUINE.split("%s")[0] + "    - key_client: register\n",  # the key server answering proves no UDP
    )
    _, report = load_suite([path])
    assert any(
        "line 12 (expect silence) expects absence on the SUT's EMSDP endpoint, and no later step shows" in e
        for e in report.errors
    ), report.errors
    _, good = one_case(tmp_path, FORGED_THEN_GENUINE % "", "T-GOOD")
    assert not [e for e in load_suite([good])[1].errors if "absence" in e]


# ---- refusals are judged after a control connection --------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nothing_listening_is_no_refusal(reference, tmp_path):
    running, certs = reference
    nowhere = lab_profile(running, certs, endpoints={"key_server": f"https://127.0.0.1:{free_port()}"})
    for case_id in ("HSE-TLS-001", "HSE-TLS-002", "HSE-TLS-006"):
        result = run_case(HSE[case_id], nowhere, tmp_path)
        assert result.verdict is Verdict.INCONCLUSIVE and "nothing answers" in result.reason, (case_id, result.reason)


def test_a_server_that_drops_every_connection_refuses_nothing(reference, tmp_path):
    """It breaks off the bad client's handshake, and the good one's too: no refusal can be judged."""
    running, certs = reference
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drop() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                listener.accept()[0].close()
            except TimeoutError:
                continue

    threading.Thread(target=drop, daemon=True).start()
    try:
        port = listener.getsockname()[1]
        dropping = lab_profile(running, certs, endpoints={"key_server": f"https://127.0.0.1:{port}"})
        tls_001 = run_case(HSE["HSE-TLS-001"], dropping, tmp_path)
        tls_004 = run_case(HSE["HSE-TLS-004"], dropping, tmp_path)
    finally:
        stop.set()
        listener.close()
    assert tls_001.verdict is Verdict.INCONCLUSIVE and "control connection" in tls_001.reason, tls_001.reason
    assert tls_004.verdict is Verdict.FAIL, tls_004.reason  # the valid registration got no answer


# ---- the decision and the run's accounting ------------------------------------------------------------------


def result(case_id: str, verdict: str, level: str = "shall") -> dict:
    return {"case": case_id, "verdict": verdict, "level": level}


def cases(*ids: str, level: str = "shall") -> dict:
    return {i: SimpleNamespace(id=i, level=level) for i in ids}


def test_the_decision_is_never_pass_while_an_applicable_shall_case_did_not_run():
    assert decision([result("A", "pass")], cases("A"))["outcome"] == "pass"
    not_run = decision([result("A", "pass"), result("B", "not run")], cases("A", "B"))
    assert (
        not_run["outcome"] == "fail" and not_run["not_run"] == ["B"] and "1 shall case(s) not run" in not_run["reason"]
    )
    left_out = decision([result("A", "pass")], cases("A", "B", "C"), applies=lambda c: c.id != "C")
    assert left_out["outcome"] == "fail" and left_out["not_run"] == ["B"]  # C does not apply per the PICS
    assert decision([result("A", "pass"), result("B", "not run", "should")], cases("A"))["outcome"] == "pass"
    unreadable = decision([result("A", "pass")], cases("A"), ["results.jsonl line 2: not JSON"])
    assert unreadable["outcome"] == "fail" and unreadable["unreadable"]


def test_unreadable_result_lines_are_named_not_dropped(tmp_path):
    results = ResultsFile(tmp_path / "results.jsonl")
    results.path.write_text('{"case": "A", "verdict": "pass", "level": "shall"}\n{"case": "B", "verd\n[1]\n')
    loaded = load_results(results.path)
    assert [r["case"] for r in loaded.results] == ["A"]
    assert [u.split(":")[0] for u in loaded.unreadable] == ["results.jsonl line 2", "results.jsonl line 3"]


def test_a_collected_case_without_a_result_is_a_harness_error(tmp_path):
    (tmp_path / "results.jsonl").write_text('{"case": "A", "verdict": "pass", "level": "shall"}\n')
    (tmp_path / "compliance.json").write_text('{"decision": {"outcome": "pass", "reason": "", "errors": []}}')
    collected = Collected()
    collected.ids = {"A", "B"}
    outcome = conclude(tmp_path, 0, collected, None)
    assert outcome.code == 3 and any("1 collected case(s) wrote no result: B" in line for line in outcome.lines)


def test_pytest_fails_cases_against_a_dead_sut_it_does_not_skip_them(reference, tmp_path):
    """A vendor's CI must not go green because the SUT cannot even set up a session."""
    running, certs = reference
    data = running.profile.model_dump(mode="json", exclude_none=True)
    data["endpoints"] = {"hse": {"port": free_port()}, "key_server": f"https://127.0.0.1:{free_port()}"}
    data["tls"] = lab_tls(certs)
    data.pop("reference", None)
    profile = tmp_path / "dead.yaml"
    profile.write_text(yaml.safe_dump(data))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-o", "addopts=", "-p", "no:cacheprovider", "--best-profile", str(profile),
         "--best-reports", "reports", "-k", "SR-001 or TLS-001 or UP-001", "-q", "-rA",
         "--junitxml", str(tmp_path / "ci" / "out.xml"), "--alluredir", str(tmp_path / "ci" / "allure")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout[-2000:]
    assert "3 failed" in done.stdout and "skipped" not in done.stdout, done.stdout[-2000:]
    assert "INCONCLUSIVE: HSE-TLS-001" in done.stdout and "nothing answers" in done.stdout
    assert "decision: FAIL" in done.stdout  # the summary says where the run folder went, as an absolute path
    assert f"run folder: {tmp_path / 'reports'}/" in done.stdout  # absolute --junitxml/--alluredir move nothing
    assert len(list((tmp_path / "reports").glob("*/compliance.json"))) == 1
