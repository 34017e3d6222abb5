"""The key-server fuzzer's two other oracles, each seen to fail on a server with the fault it looks for:
no_key_when_refused (a key for a request that must be refused: the reference EMKS with session_not_deleted hands
out keys on a deregistered session) and no_hang (no answer within the reply timeout: a listener that accepts a
connection and never says a word)."""

from __future__ import annotations

import socket
from pathlib import Path

import yaml

from conformance.embedded import embedded_reference
from conformance.engine.lint import load_suite
from conformance.engine.runner import run_case
from conformance.keyserver.certs import harness_certificates
from conformance.keyserver.client import KeyServerClient
from conformance.keyserver.xml import KeyServerXml
from conformance.profile import load_profile
from conformance.roles.key_client import answer_problem, raw_request

EMKS = load_profile(Path(__file__).resolve().parents[2] / "profiles" / "reference-emks.yaml")


def after_deregistering(tmp_path: Path):
    """A case as a fuzz finding is written: a key asked for on the client's own session once it deregistered."""
    path = EMKS.binding["rest.paths.ue_key"].replace("{session_id}", "{session}")
    case = {
        "id": "FUZZ-KS-001",
        "title": "a key on a deregistered session",
        "purpose": "the no_key_when_refused oracle",
        "refs": ["TS 33.117"],
        "requirements": ["POL-REST-006"],
        "level": "should",
        "applies": {"sut": "emks"},
        "steps": [
            {"key_client": "register"},
            {"key_client": "deregister"},
            {"key_client": "request", "with": {"method": "GET", "path": path, "no_key": True}},
            {"key_client": "register"},
            {"key_client": "fetch_key", "with": {"key": {"provisioned": -1}}},
        ],
    }
    file = tmp_path / "case.yaml"
    file.write_text(yaml.safe_dump([case], sort_keys=False), encoding="utf-8")
    (loaded,), lint = load_suite([file], EMKS.binding)
    assert lint.errors == []
    return loaded


def test_a_key_for_a_request_that_must_be_refused_fails_the_oracle(tmp_path):
    case = after_deregistering(tmp_path)
    for faults, verdict in ((frozenset(), "pass"), (frozenset({"session_not_deleted"}), "warn")):
        with embedded_reference(EMKS, faults) as (profile, certs):
            result = run_case(case, profile, tmp_path / verdict, certs=certs)
        assert result.verdict.value == verdict, result.reason
        if faults:
            assert "no UE key for a request that must be refused" in result.reason, result.reason


def test_a_server_that_never_answers_fails_the_no_hang_oracle():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        certs = harness_certificates()
        pair = certs.client("emse-1")
        with KeyServerClient(
            f"https://127.0.0.1:{port}", EMKS.binding, ca=certs.ca, cert=pair.cert, key=pair.key, timeout=0.5
        ) as client:
            answer = raw_request(client, "GET", "/", None, None)
    problem = answer_problem(answer, KeyServerXml(EMKS.binding), no_key=False)
    assert problem is not None and problem[0] == "no_hang", (answer, problem)
