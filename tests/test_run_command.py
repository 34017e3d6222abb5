"""`best-conformance run` and its neighbours as a newcomer meets them: one line and exit 2 for bad input, the
decision printed at the end, a dead SUT named at once and given up on early, and a run's pcaps readable with
the commands the README gives."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("best-conformance"))


def cli(tmp_path: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout, cwd=tmp_path)


def one_line_exit_2(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
    return done.stderr


def test_a_keyword_matching_no_case_is_one_line_and_leaves_no_folder(tmp_path):
    err = one_line_exit_2(cli(tmp_path, "run", "--reports", "out", "-k", "NOPE-999"))
    assert "no case matches -k 'NOPE-999'" in err and "pytest" not in err
    assert not any((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_an_unknown_fault_is_one_line_with_a_suggestion(tmp_path):
    err = one_line_exit_2(cli(tmp_path, "run", "--fault", "bad_autn_mc"))
    assert "did you mean 'bad_autn_mac'?" in err


def test_a_fault_is_refused_with_a_profile_of_a_lab_sut(tmp_path):
    err = one_line_exit_2(
        cli(tmp_path, "run", "--profile", str(ROOT / "profiles/reference-hse.yaml"), "--fault", "no_reply")
    )
    assert "--fault switches on a fault of the embedded reference" in err


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_sut_that_never_answers_is_named_at_once_and_the_run_stops_early(tmp_path):
    data = yaml.safe_load((ROOT / "profiles/reference-hse.yaml").read_text())
    data["endpoints"] = {"hse": {"port": free_port()}}
    data.pop("reference")
    (tmp_path / "dead.yaml").write_text(yaml.safe_dump(data))
    done = cli(tmp_path, "run", "--profile", "dead.yaml", "--reports", "out", "-k", "SR-00", "--stop-after", "2")
    assert done.returncode == 1, done.stderr
    err = " ".join(done.stderr.split())
    assert "the SUT did not answer" in err and "the run stopped after 2 cases in a row got no answer" in err
    assert re.search(r"9 cases: 2 \w+.* 7 not run", err), err
    assert "decision: FAIL" in err


def test_explain_keeps_a_check_text_whole_past_e_g(tmp_path):
    done = cli(tmp_path, "explain", "HSE-KI-004")
    assert done.returncode == 0 and "e.g. {session_id: {not: 0}, key_id: 0}" in done.stdout


def test_list_piped_does_not_fold_at_80_columns(tmp_path):
    done = cli(tmp_path, "list")
    row = next(line for line in done.stdout.splitlines() if "HSE-CT-001" in line)
    assert "A replayed user-plane message is discarded, and the next" in row and len(row) > 120


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """A default run (the embedded reference on a free port) of two cases."""
    reports = tmp_path_factory.mktemp("reports")
    done = cli(reports, "run", "--reports", str(reports), "-k", "CT-001 or SR-001 or TLS-002")
    assert done.returncode == 1, done.stderr  # a partial run: the decision is not pass
    (folder,) = [p for p in reports.iterdir() if p.is_dir()]
    return folder


def test_dissect_reads_a_run_folders_pcap_on_the_port_its_sut_used(run_folder, tmp_path):
    done = cli(tmp_path, "dissect", str(run_folder / "pcaps" / "HSE-CT-001.pcap"))
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    count, port = re.match(r"(\d+) EMSDP message\(s\) on UDP port (\d+)", last).groups()
    assert int(count) >= 6 and int(port) != 31163  # the embedded reference's free port, not the binding's
    other = cli(tmp_path, "dissect", "--port", "9", str(run_folder / "pcaps" / "HSE-CT-001.pcap"))
    assert other.stdout.strip().endswith("0 EMSDP message(s) on UDP port 9, 0 with problems")


def test_the_readmes_tshark_line_works_on_a_default_run(run_folder, tmp_path):
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed (apt-get install tshark): the README's tshark line is only checked in it")
    lua = cli(tmp_path, "wireshark-dissector", "--run", str(run_folder))
    assert lua.returncode == 0, lua.stderr
    (tmp_path / "emsdp.lua").write_text(lua.stdout)
    pcap = run_folder / "pcaps" / "HSE-CT-001.pcap"
    shown = subprocess.run(
        ["tshark", "-X", "lua_script:emsdp.lua", "-r", str(pcap), "-O", "emsdp", "-V"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "session_request" in shown.stdout and "session_start" in shown.stdout, shown.stdout[:2000]


def test_no_private_key_is_left_in_a_run_folder(run_folder, tmp_path):
    """The foreign CA (HSE-TLS-002) and the rogue EMKS's CA (EMSE-REG-006) live in the user's cache: a lab signs
    and ships the run folder."""
    emse = cli(tmp_path, "run", "--profile", str(ROOT / "profiles/reference-emse.yaml"), "--reference",
               "--reports", "out", "-k", "REG-006")  # fmt: skip
    assert "1 case: 1 pass" in " ".join(emse.stderr.split()), emse.stderr
    for folder in (run_folder, tmp_path / "out"):
        keys = [p for p in folder.rglob("*") if p.suffix in (".key", ".pem") or b"PRIVATE KEY" in _head(p)]
        assert not keys, keys


def _head(path: Path) -> bytes:
    return path.read_bytes()[:4096] if path.is_file() else b""
