"""Load generator and reference HSE and EMKS capacity (issue 18), in verified sessions (key fetches) per second.

    python benchmarks/load.py [SECONDS] [--profile]

(a) the generator's own ceiling: one Locust worker process (`best-conformance load`, no --workers) against a
    responder that is not the bottleneck: a replay responder in its own process that answers each datagram with
    the octets the reference HSE answered it with when the same sessions were recorded beforehand (the load UE
    against the reference HSE in one process, no sockets). The UE side is deterministic (its payloads are a
    function of subscriber and session), so the live run sends exactly the recorded octets and every reply is
    verified for real: AUTN through the USIM, keys derived, MACs, counters, echo. The responder does one dict
    look-up per datagram. Target: >= 1,000 verified sessions/s.
(b) master + 2 local workers (`--workers 2`) against the same responder, compared with (a). Target: >= 1.8x.
(c) the reference HSE's capacity: `best-conformance load --reference` (the HSE served as its own process, one
    asyncio thread) with enough users to keep it busy.
(d) the reference EMKS's capacity: the same with profiles/reference-emks.yaml (EMSE users: register, fetch each
    UE's keys and check them against our derivation, deregister; mutual TLS), in verified key fetches per second.

Each session is Session Request -> Session Start -> Start Confirmation -> 1 user-plane round trip -> Terminate
(3 timed exchanges, 7 datagrams). On a 2-core machine generator and responder share the cores: the figures say
what this host gives, not what the code could on more cores. `--profile` also runs (a) under cProfile and prints
where the worker's time goes.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import pickle
import pstats
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

import yaml

from conformance.load.emsdp_client import EmsdpUe, LoadContext
from conformance.load.settings import LoadSubscribers
from conformance.profile import load_profile
from conformance.reference.hse import ReferenceHse

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "profiles" / "reference-hse.yaml"
EXE = str(Path(sys.executable).with_name("best-conformance"))
USERS = 40  # per run: enough to keep one worker busy (each waits for its replies)
RATE_CEILING = 2500  # sessions/s the recording is sized for (per run), beyond what 2 cores can do


class _Capture:
    """The reference HSE's transport: what it sends, kept."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append(bytes(data))


class _RecordingLink:
    """The load UE's link straight into the reference HSE: each datagram handled at once, the replies queued,
    and every (datagram -> replies) pair recorded."""

    def __init__(self, hse: ReferenceHse, addr: tuple[str, int], table: dict[bytes, deque[list[bytes]]]):
        self.hse, self.addr, self.table = hse, addr, table
        self.queue: deque[bytes] = deque()

    def send(self, data: bytes) -> None:
        capture = self.hse.transport
        before = len(capture.sent)
        self.hse.handle(data, self.addr)
        replies = capture.sent[before:]
        self.table[data].append(list(replies))
        self.queue.extend(replies)

    def receive(self, timeout: float) -> bytes:
        return self.queue.popleft()

    def close(self) -> None:
        pass


def _steps(name: str) -> Any:
    import contextlib

    @contextlib.contextmanager
    def step() -> Any:
        yield {"length": 0}

    return step()


def record(profile_path: Path, slots: list[int], sessions: int, out: Path) -> None:
    """Record `sessions` sessions of each subscriber slot against the reference HSE (1 UP round trip)."""
    profile = load_profile(profile_path)
    hse = ReferenceHse(profile)
    hse.transport = _Capture()  # type: ignore[assignment]
    context, subscribers = LoadContext(profile), LoadSubscribers(profile)
    table: dict[bytes, deque[list[bytes]]] = defaultdict(deque)
    for n, index in enumerate(slots):
        ue = EmsdpUe(context, subscribers.at(index), _RecordingLink(hse, ("10.0.0.1", 1024 + n), table))
        for _ in range(sessions):
            ue.run_session(_steps, 1)
        hse.transport.sent.clear()  # type: ignore[union-attr]
    out.write_bytes(pickle.dumps(dict(table)))


def responder(tables: list[str], port: int, ready: Any) -> None:
    """Answer each datagram with what the HSE answered it with when recorded: a dict look-up, nothing else."""
    table: dict[bytes, deque[list[bytes]]] = {}
    for path in tables:
        for key, replies in pickle.loads(Path(path).read_bytes()).items():
            table.setdefault(key, deque()).extend(replies)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(("127.0.0.1", port))
    ready.set()
    recvfrom, sendto, get = sock.recvfrom, sock.sendto, table.get
    while True:
        data, addr = recvfrom(2048)
        queue = get(data)
        if queue:
            for reply in queue.popleft():
                sendto(reply, addr)


def lab_profile(folder: Path, port: int) -> Path:
    data = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    data.pop("reference", None)
    data["endpoints"]["hse"] = {"host": "127.0.0.1", "port": port}
    data["sut"]["product"] = "replay responder (reference HSE's recorded answers)"
    path = folder / "replay.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def load_run(folder: Path, profile: Path, seconds: int, *extra: str, env: dict[str, str] | None = None) -> dict:
    reports = folder / "reports"
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    # the command, Locust's master and its workers (and with --reference the served HSE), once reaped; the replay
    # responder is not among them
    before = used.ru_utime + used.ru_stime
    command = [EXE, "load", "--profile", str(profile), "-u", str(USERS), "-t", f"{seconds}s", "-k", "1"]
    done = subprocess.run(
        [*command, "--reports", str(reports), *extra],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=seconds + 180,
    )
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = used.ru_utime + used.ru_stime - before
    runs = sorted(reports.glob("load-*"))
    if not runs or not (runs[-1] / "load.json").is_file():
        raise SystemExit(f"load run failed ({done.returncode}): {done.stderr[-2000:]}")
    summary = json.loads((runs[-1] / "load.json").read_text(encoding="utf-8"))
    summary["_folder"], summary["_cpu"] = str(runs[-1]), cpu
    return summary


def against_replay(folder: Path, seconds: int, tables: list[str], *extra: str, env: dict | None = None) -> dict:
    from conformance.reference.process import free_port

    port = free_port(udp=True)
    ready = multiprocessing.Event()
    process = multiprocessing.Process(target=responder, args=(tables, port, ready), daemon=True)
    process.start()
    ready.wait(60)
    try:
        return load_run(folder, lab_profile(folder, port), seconds, *extra, env=env)
    finally:
        process.kill()
        process.join()


def line(name: str, s: dict) -> str:
    sessions, kinds = s["sessions"], s["kinds"]
    p50 = "/".join(f"{k['p50_ms']:.2g}" for k in kinds.values())
    return (
        f"{name}: {sessions['per_second']:.0f} verified sessions/s ({sessions['ok']} ok, {sessions['failed']} failed, "
        f"{s['failures']['verification']} verification / {s['failures']['transport']} transport failures), "
        f"{s['requests']['per_second']:.0f} exchanges/s, p50 per exchange {p50} ms, {s['users']} users, "
        f"{s['workers']} worker(s), {s['measured_s']:.1f} s; CPU of the command and its processes {s['_cpu']:.1f} s "
        f"({s['sessions']['ok'] / max(s['_cpu'], 1e-9):.0f} verified sessions per CPU second)"
    )


def main(seconds: int = 10, profile_worker: bool = False) -> None:
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sessions = int(RATE_CEILING * (seconds + 6) / USERS)  # per user, with margin for start and stop
        slots = [*range(USERS), LoadSubscribers(load_profile(SHIPPED)).count - 1]  # + the preflight's
        start = time.perf_counter()
        halves = [slots[0::2], slots[1::2]]
        tables = [str(folder / f"table{n}.pickle") for n in range(2)]
        procs = [
            multiprocessing.Process(target=record, args=(SHIPPED, half, sessions, Path(t)))
            for half, t in zip(halves, tables, strict=True)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        print(
            f"recorded {sessions} sessions for each of {len(slots)} subscribers against the reference HSE in "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )
        one = against_replay(folder, seconds, tables)
        print("(a) " + line("one worker vs the replay responder", one), flush=True)
        two = against_replay(folder, seconds, tables, "--workers", "2")
        print("(b) " + line("master + 2 workers vs the replay responder", two), flush=True)
        ratio = two["sessions"]["per_second"] / max(one["sessions"]["per_second"], 1e-9)
        efficiency = (two["sessions"]["ok"] / two["_cpu"]) / (one["sessions"]["ok"] / one["_cpu"])
        print(
            f"    scaling: {ratio:.2f}x one worker on this host (target >= 1.8x); per generator CPU second 2 workers "
            f"keep {efficiency:.0%} of one worker's sessions, so with a core per worker (and the responder's own) "
            f"they would give about {2 * efficiency:.2f}x",
            flush=True,
        )
        hse = load_run(folder, SHIPPED, seconds, "--reference")
        print("(c) " + line("the reference HSE served (one process)", hse), flush=True)
        emks = load_run(folder, ROOT / "profiles" / "reference-emks.yaml", seconds, "--reference")
        fetch = next((k for name, k in emks["kinds"].items() if name.endswith("Fetch key")), {"requests": 0})
        print(
            f"(d) the reference EMKS served (one process), EMSE users: {fetch['requests'] / emks['measured_s']:.0f} "
            f"verified key fetches/s, {emks['requests']['per_second']:.0f} requests/s (register, fetch, deregister; "
            f"mutual TLS), {emks['failures']['verification']} verification / {emks['failures']['transport']} "
            f"transport failures, {emks['users']} users",
            flush=True,
        )
        print(f"load average {os.getloadavg()[0]:.1f} at the end", flush=True)
        if profile_worker:
            print(profile_run(folder, seconds, tables), flush=True)


def profile_run(folder: Path, seconds: int, tables: list[str]) -> str:
    """Run (a)'s Locust worker under cProfile (no preflight: Locust alone) and say where its time goes."""
    from conformance.load.command import LOCUSTFILE, _environment
    from conformance.load.settings import LoadSettings
    from conformance.reference.process import free_port

    port = free_port(udp=True)
    ready = multiprocessing.Event()
    process = multiprocessing.Process(target=responder, args=(tables, port, ready), daemon=True)
    process.start()
    ready.wait(60)
    stats = folder / "worker.prof"
    settings = LoadSettings(profile=str(lab_profile(folder, port)), round_trips=1, seed=1)
    command = [sys.executable, "-m", "cProfile", "-o", str(stats), "-m", "locust", "-f", str(LOCUSTFILE)]
    command += ["--headless", "--only-summary", "-u", str(USERS), "-r", str(USERS), "-t", f"{seconds}s"]
    try:
        subprocess.run(command, env=_environment(settings, 1), capture_output=True, timeout=seconds + 120, check=False)
    finally:
        process.kill()
        process.join()
    out = io.StringIO()
    pstats.Stats(str(stats), stream=out).sort_stats("tottime").print_stats(30)
    return out.getvalue()


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(args[0]) if args else 10, "--profile" in sys.argv)
