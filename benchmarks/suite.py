"""Suite speed, measured in one run: the harness's median added latency per exchange over a plain Python UDP echo
of the same bytes, the HSE suite against its embedded reference (engine only), and a full certification: every
kind's suite against its reference, one command (`best-conformance run --all`). Targets (issue #14): added
latency <= 2x the echo's round trip; the full certification under 30 s on 2 cores.

    python benchmarks/suite.py [EXCHANGES]
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from conformance.embedded import embedded_reference
from conformance.engine.lint import load_suite
from conformance.engine.model import suite_dir
from conformance.engine.runner import run_case
from conformance.profile import load_profile
from conformance.roles.ue import Credentials, Ue

ROOT = Path(__file__).resolve().parent.parent


def echo_server() -> tuple[socket.socket, threading.Event, threading.Thread]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(65535)
            except TimeoutError:
                continue
            sock.sendto(data, addr)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return sock, stop, thread


def added_latency(exchanges: int) -> tuple[float, float]:
    """Median round trip (µs) of the same message: plain socket vs the UE role (codec, tap, decode)."""
    profile = load_profile(ROOT / "profiles" / "reference-hse.yaml")
    server, stop, thread = echo_server()
    address = server.getsockname()
    sub = profile.pixit.subscribers[0]
    with tempfile.TemporaryDirectory() as tmp:
        from conformance.capture.tap import PcapTap

        with (
            PcapTap(Path(tmp) / "bench.pcap") as tap,
            Ue(
                profile.binding,
                Credentials.from_subscriber(sub),
                address,
                snn=profile.pixit.serving_network_name,
                eas_id=profile.pixit.eas_id,
                tap=tap,
            ) as ue,
        ):
            raw = bytes(ue.build_session_request())
            plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            plain.settimeout(2)
            plain_times, harness_times = [], []
            for _ in range(exchanges):
                start = time.perf_counter()
                plain.sendto(raw, address)
                plain.recvfrom(65535)
                plain_times.append(time.perf_counter() - start)
                start = time.perf_counter()
                ue.send(ue.build_session_request())
                ue.receive()
                harness_times.append(time.perf_counter() - start)
            plain.close()
    stop.set()
    thread.join()
    server.close()
    return statistics.median(plain_times) * 1e6, statistics.median(harness_times) * 1e6


def suite_wall_time() -> tuple[int, float, dict[str, int]]:
    profile = load_profile(ROOT / "profiles" / "reference-hse.yaml")
    cases, report = load_suite(suite_dir("hse").glob("*.yaml"))
    assert not report.errors, report.errors
    verdicts: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp, embedded_reference(profile) as (running, certs):
        start = time.perf_counter()
        for case in cases:
            verdict = run_case(case, running, Path(tmp), certs=certs).verdict.value
            verdicts[verdict] = verdicts.get(verdict, 0) + 1
        return len(cases), time.perf_counter() - start, verdicts


def cli_wall_time(*args: str) -> tuple[float, int]:
    """Wall time (s) and exit code of `best-conformance run ARGS` in a scratch folder."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        done = subprocess.run(
            [str(Path(sys.executable).with_name("best-conformance")), "run", "--reports", tmp, *args],
            check=False,
            capture_output=True,
            cwd=tmp,
        )
        return time.perf_counter() - start, done.returncode


def main(exchanges: int = 500) -> None:
    plain, harness = added_latency(exchanges)
    added = harness - plain
    print(
        f"round trip over {exchanges} exchanges, median: plain UDP echo {plain:.0f} µs, through the UE role "
        f"{harness:.0f} µs, added by the harness {added:.0f} µs = {added / plain:.2f}x the echo (target <= 2x)"
    )
    count, seconds, verdicts = suite_wall_time()
    print(f"HSE suite: {count} cases in {seconds:.1f} s against the embedded reference (engine only); {verdicts}")
    hse, code = cli_wall_time()
    print(f"best-conformance run, the HSE (start-up, reference, reports): {hse:.1f} s, exit {code}")
    every, code = cli_wall_time("--all")
    print(f"best-conformance run --all, every kind's suite (target < 30 s): {every:.1f} s, exit {code}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
