"""`best-conformance run --all`: every kind's suite against its embedded reference in one command and one
folder, with one exit code that is 0 only when every kind's decision is pass."""

from __future__ import annotations

import json

import pytest

from conformance.run import KINDS, kind_unavailable
from tests.test_run_command import cli, one_line_exit_2


def folders(out):
    (parent,) = out.iterdir()
    return parent, json.loads((parent / "runs.json").read_text())


@pytest.mark.slow
def test_all_kinds_pass_against_their_references_in_one_folder(tmp_path):
    done = cli(tmp_path, "run", "--all", "--reports", "out", timeout=300)
    runnable = [k for k in KINDS if kind_unavailable(k) is None]
    parent, record = folders(tmp_path / "out")
    assert done.returncode == (0 if runnable == list(KINDS) else 1), done.stderr
    assert "decision over all kinds: " in done.stderr.splitlines()[-1]
    for kind in runnable:
        compliance = json.loads((parent / kind / "compliance.json").read_text())
        assert compliance["sut"]["kind"] == kind
        assert compliance["decision"]["outcome"] == record["kinds"][kind]["decision"] == "pass"
        assert (parent / kind / "report.html").is_file() and any((parent / kind / "pcaps").iterdir())
    assert record["exit_code"] == done.returncode


def test_a_partial_run_of_all_kinds_is_not_a_pass(tmp_path):
    """-k leaves cases out: each kind's decision says so, and a kind no case of which matches counts too."""
    done = cli(tmp_path, "run", "--all", "--reports", "out", "-k", "HSE-SR-001 or EMKS-REG-001", timeout=300)
    assert done.returncode == 1, done.stderr
    parent, record = folders(tmp_path / "out")
    assert record["kinds"]["hse"]["decision"] == record["kinds"]["emks"]["decision"] == "fail"
    assert "shall case(s) not run" in record["kinds"]["hse"]["reason"]
    assert record["kinds"]["emse"]["decision"] is None and record["kinds"]["emse"]["exit_code"] == 1
    assert not (parent / "emse").exists()
    assert "FAIL" in done.stderr.splitlines()[-1]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--fault", "bad_autn_mac"], "--all runs the references as shipped"),
        (["--profile", "lab.yaml"], "leave out --profile"),
        (["-k", "NOPE-999"], "no case of any kind matches -k 'NOPE-999'"),
    ],
)
def test_all_refuses_what_applies_to_one_kind_in_one_line(tmp_path, args, says):
    (tmp_path / "lab.yaml").write_text("sut: {kind: hse}\n")
    assert says in one_line_exit_2(cli(tmp_path, "run", "--all", "--reports", "out", *args))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
