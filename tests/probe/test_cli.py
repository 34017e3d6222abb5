"""`best-conformance probe`: offline and live through the command line, its folder and its exit codes."""

from __future__ import annotations

import json

import pytest
import yaml

from conformance.binding import load_binding
from conformance.cli import main
from tests.probe.sut import COUNT_MSB, capture_exchange, running_sut


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def profile_file(profile, path):
    path.write_text(yaml.safe_dump(profile.profile.model_dump(mode="json", exclude_none=True)))
    return str(path)


def test_offline_writes_the_folder_and_exits_0(tmp_path, capsys):
    with running_sut(COUNT_MSB) as (running, profile):
        pcap = capture_exchange(running, tmp_path / "x.pcap")
    code, out, _ = run(
        capsys, "probe", "--profile", profile_file(profile, tmp_path / "p.yaml"), "--pcap", str(pcap),
        "--reports", str(tmp_path / "reports"),
    )  # fmt: skip
    assert code == 0, out
    assert "protection.count.align" in out and "inferred" in out
    (folder,) = (tmp_path / "reports").glob("probe-*")
    assert load_binding(folder / "binding-override.yaml")["protection.count.align"] == "msb"
    document = json.loads((folder / "probe.json").read_text())
    assert document["consistent"] and document["differences"] == COUNT_MSB
    assert "protection.count.align" in (folder / "report.md").read_text()


def test_live_json_and_a_contradiction_exits_1(tmp_path, capsys):
    misread = {"protection.count.layout": ["counter", "session_id", "direction"]}
    with running_sut(misread) as (_running, profile):
        code, out, err = run(
            capsys, "probe", "--profile", profile_file(profile, tmp_path / "p.yaml"), "--json", "--max-sessions", "3",
            "--reports", str(tmp_path / "reports"),
        )  # fmt: skip
    document = json.loads(out)
    assert document["live"]["sessions"] <= 3
    assert (tmp_path / "reports").glob("probe-*/live.pcap")
    # the SUT answers none of the candidates, and the protected message it sends on its own verifies under none
    assert code == 1 and not document["consistent"] and document["differences"] == {}
    (first, *_) = document["contradictions"]
    assert first["direction"] == "from the SUT" and "MAC verifies under no candidate" in first["what"]
    assert "session 1" in err


def test_bad_input_exits_2(tmp_path, capsys):
    code, _, err = run(capsys, "probe", "--profile", str(tmp_path / "missing.yaml"))
    assert code == 2 and "cannot read" in err
