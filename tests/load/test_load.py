"""`best-conformance load` end to end: the reference HSE served as its own process, Locust in its own (or as a
master and workers), real UDP on loopback. The conformant reference gives no failure; each fault that shows only
under concurrency is caught as verification failures; the run folder holds what load.json says it does; bad input
is one line, not a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conformance.cli import main
from conformance.faults import BY_NAME, LOAD, load_catalogue
from conformance.load.command import seconds
from conformance.load.metrics import Collector, percentile, reason_key
from conformance.load.settings import slot
from conformance.load.summary import check
from conformance.reference.process import free_port
from conformance.selftest import kind_faults
from tests.load.runs import load

ROOT = Path(__file__).resolve().parents[2]
HSE = ROOT / "profiles" / "reference-hse.yaml"
LOAD_FAULTS = ("hse_crossed_keys_under_concurrency", "hse_shared_counter_between_sessions")


@pytest.fixture(scope="module")
def conformant(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    code, err, folder = load(
        tmp_path_factory.mktemp("load"), "--profile", str(HSE), "--reference", "-u", "8", "-t", "3s", "-k", "2"
    )
    assert folder is not None, err
    return code, err, folder


@pytest.mark.slow  # a load run: some 6 to 10 s
def test_the_conformant_reference_hse_under_load_gives_no_failure(conformant):
    code, err, folder = conformant
    summary = json.loads((folder / "load.json").read_text(encoding="utf-8"))
    assert code == 0, err
    assert summary["outcome"] == "pass" and summary["sessions"]["ok"] >= 8 and summary["sessions"]["failed"] == 0
    assert summary["failures"] == {"verification": 0, "transport": 0, "by_reason": []}
    assert set(summary["kinds"]) == {"EMSDP Session Request", "EMSDP User Data", "EMSDP Terminate"}
    assert summary["kinds"]["EMSDP User Data"]["requests"] == 2 * summary["sessions"]["ok"]
    assert summary["reference"] == {"faults": [], "died_at": None} and summary["users"] == 8


@pytest.mark.slow  # a load run: some 6 to 10 s
def test_the_run_folder_holds_what_load_json_claims(conformant):
    _, _, folder = conformant
    summary = json.loads((folder / "load.json").read_text(encoding="utf-8"))
    assert check(summary) == []
    names = [summary["files"]["report"], summary["files"]["locust_html"], *summary["files"]["locust_csv"]]
    assert all((folder / name).is_file() for name in names), sorted(p.name for p in folder.iterdir())
    assert (folder / "reference" / "lab" / "lab.yaml").is_file()  # the reference was reached as a lab reaches it
    report = (folder / "report.html").read_text(encoding="utf-8")
    assert report.count("<svg") == 2 and "<polyline" in report and "http" not in report.replace("http://www.w3", "")
    assert summary["series"] and summary["kinds"]["EMSDP Session Request"]["p50_ms"] > 0
    tampered = {**summary, "sessions": {**summary["sessions"], "ok": summary["sessions"]["ok"] + 1}}
    ok = summary["sessions"]["ok"]
    assert check(tampered) == [f"sessions.ok: {ok + 1} claimed, {ok} counted"]


@pytest.mark.slow  # a load run: some 6 s
@pytest.mark.parametrize(
    ("fault", "kind", "reason"),
    [
        (LOAD_FAULTS[0], "EMSDP Session Request", "AUTN refused by the USIM (mac_failure)"),
        (LOAD_FAULTS[1], "EMSDP User Data", "not above"),
    ],
)
def test_a_fault_that_shows_only_under_concurrency_is_caught_as_verification_failures(tmp_path, fault, kind, reason):
    code, err, folder = load(
        tmp_path, "--profile", str(HSE), "--reference", "--fault", fault, "-u", "8", "-t", "3s", "-k", "3"
    )
    assert code == 1, err
    summary = json.loads((folder / "load.json").read_text(encoding="utf-8"))
    assert summary["outcome"] == "fail" and summary["failures"]["verification"] > 0 and check(summary) == []
    assert summary["failures"]["by_reason"][0]["class"] == "verification", summary["failures"]["by_reason"][:3]
    assert any(e["kind"] == kind and reason in e["example"] for e in summary["failures"]["by_reason"])
    assert summary["reference"]["faults"] == [fault]


def test_the_load_faults_are_found_by_load_only_and_the_selftest_skips_them():
    for name in LOAD_FAULTS:
        fault = BY_NAME[name]
        assert fault.found_by == (LOAD,) and not fault.caught_by and fault.finder == "best-conformance load"
        assert name not in kind_faults("hse")
    text = "faults:\n  - {name: x, component: hse, layer: protocol, description: d, found_by: [load, load]}\n"
    with pytest.raises(ValueError, match="distinct interfaces"):
        load_catalogue(text)


@pytest.mark.slow  # a load run: some 6 to 10 s
def test_a_distributed_run_master_and_two_workers(tmp_path):
    code, err, folder = load(
        tmp_path, "--profile", str(HSE), "--reference", "--workers", "2", "-u", "6", "-t", "3s", "-k", "1"
    )
    summary = json.loads((folder / "load.json").read_text(encoding="utf-8"))
    assert code == 0, err
    assert summary["workers"] == 2 and summary["sessions"]["ok"] > 50 and summary["failures"]["verification"] == 0
    assert check(summary) == []


# ---- bad input: one line, exit 2 (or 3 for an SUT that does not answer), never a traceback ------------------


def run_main(args: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    return exit_.value.code, capsys.readouterr().err


def profile_with(tmp_path: Path, change) -> Path:
    data = yaml.safe_load(HSE.read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_an_unknown_profile_field_is_bad_input(tmp_path, capsys):
    path = profile_with(tmp_path, lambda d: d["pixit"].update(load_users=3))
    code, err = run_main(["load", "--profile", str(path), "--reports", str(tmp_path)], capsys)
    assert code == 2 and "pixit.load_users: unknown field" in err and "Traceback" not in err


def test_too_few_subscribers_for_the_users_is_bad_input(tmp_path, capsys):
    path = profile_with(tmp_path, lambda d: d["pixit"].pop("subscriber_ranges"))
    code, err = run_main(["load", "--profile", str(path), "-u", "200", "--reports", str(tmp_path)], capsys)
    assert code == 2 and "200 users need 200 distinct subscribers" in err and "subscriber_ranges" in err
    assert not list(tmp_path.glob("load-*"))  # nothing ran


def test_an_sut_that_does_not_answer_is_said_in_one_line(tmp_path, capsys):
    port = free_port(udp=True)
    path = profile_with(tmp_path, lambda d: d["endpoints"].update(hse={"host": "127.0.0.1", "port": port}))
    code, err = run_main(["load", "--profile", str(path), "--timeout", "0.5", "--reports", str(tmp_path)], capsys)
    assert code == 3 and f"the HSE at 127.0.0.1:{port} (endpoints.hse) does not serve" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fault", "hse_crossed_keys_under_concurrency"], "add --reference"),
        (["--worker"], "--worker needs --master-host"),
        (["--worker", "--master-host", "h"], "and --expect-workers"),
        (["--run-time", "soon"], "--run-time takes a time span"),
        (["--weight", "EmsdpUe=0"], "every user class has weight 0"),
        (["--reference", "--fault", "no_such_fault"], "unknown fault(s) no_such_fault"),
    ],
)
def test_wrong_options_are_bad_input(tmp_path, capsys, args, message):
    code, err = run_main(["load", "--profile", str(HSE), "--reports", str(tmp_path), *args], capsys)
    assert code == 2 and message in err


# ---- the parts --------------------------------------------------------------------------------------------


def test_time_spans_read_as_locust_reads_them():
    assert seconds("20s") == 20 and seconds("1m30s") == 90 and seconds("2h") == 7200 and seconds("15") == 15
    with pytest.raises(ValueError):
        seconds("1x")


def test_worker_slots_never_meet():
    slots = {slot(n, w, 3) for w in range(3) for n in range(50)}
    assert slots == set(range(150))


def test_collectors_merge_as_one_and_keep_sub_millisecond_latency():
    class VerificationFailure(Exception):
        pass

    one, two, both = Collector(), Collector(), Collector()
    for collector, times in ((one, [0.21, 0.25, 0.3]), (two, [0.4, 9.0])):
        for t in times:
            collector.request("EMSDP", "User Data", t, None)
        collector.request("EMSDP", "User Data", 1.0, VerificationFailure("counter 3 not above 7"))
        collector.session(True, 1.5)
    both.merge(one.drain())
    both.merge(two.drain())
    data = both.dump()
    kind = data["kinds"]["EMSDP User Data"]
    assert kind["count"] == 7 and kind["failures"] == 2
    assert percentile(kind["histogram"], 0.5) == 0.4 and percentile(kind["histogram"], 0.0) == 0.21
    (failure,) = data["failures"].values()
    assert failure["count"] == 2 and reason_key("counter 3 not above 7") == "counter N not above N"
    assert data["sessions"]["ok"] == 2 and one.dump()["kinds"] == {}
