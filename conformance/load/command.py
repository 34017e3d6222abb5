"""`best-conformance load`: Locust in its own process against the SUT, every reply verified, one run folder.

The command never imports Locust (its import monkey-patches the process with gevent): it checks the input, with
--reference starts the reference SUT as its own process (`serve`, as the selftest's lab path does) and writes the
lab profile that reaches it, proves the SUT serves with one verified session, then runs `python -m locust` with the
shipped locustfile, headless, and turns what it measured into load.json and report.html:

    reports/load-<run-id>/
      load.json             the summary (load.schema.json): rates over time, percentiles per message kind,
                            failures by reason, verification failures apart from transport failures
      report.html           throughput and latency over time (inline SVG), the tables of load.json
      locust_stats.csv ...  Locust's CSV statistics (--csv), locust.html its own report, locust.log its log
      reference/            with --reference: the served SUT's folder (sut/serve.log, lab/lab.yaml)

Exit code: 0 every session verified, 1 a failure (verification or transport), 2 bad input, 3 the harness or the
environment failed (the SUT does not answer, Locust did not finish).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from conformance.exit_codes import EXIT_FAIL, EXIT_HARNESS, EXIT_PASS, EXIT_USAGE
from conformance.load.settings import LoadSettings, LoadSubscribers, NotEnoughSubscribers

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
STARTUP_SLACK = 60.0  # s beyond the run time for Locust to start, stop its users and write its reports
STOP_TIMEOUT = 5  # s Locust lets a user finish the session it is in when the run time is up
_SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*(h|m|s)?", re.IGNORECASE)


class LoadError(Exception):
    """The run could not be made (the SUT does not answer, Locust failed): one line, exit 3."""


def seconds(span: str) -> float:
    """Locust's time span (20s, 1m30s, 2h, or plain seconds) in seconds; ValueError if it is not one."""
    text = span.strip().replace(" ", "")
    pos, total = 0, 0.0
    for match in _SPAN.finditer(text):
        if match.start() != pos:
            break
        total += float(match[1]) * {"h": 3600, "m": 60, "s": 1, None: 1}[(match[2] or "s").lower()]
        pos = match.end()
    if not text or pos != len(text) or total <= 0:
        raise ValueError(f"--run-time takes a time span such as 20s, 1m30s or 2h, not {span!r}")
    return total


def new_run_dir(reports: Path) -> Path:
    """reports/load-<run-id>, the run id as `run` makes it; a suffix if one already exists this second."""
    from conformance.run import new_run_id

    base = reports / f"load-{new_run_id()}"
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    folder.mkdir(parents=True)
    return folder


@click.command()
@click.option("--profile", "profile_path", required=True, type=click.Path(dir_okay=False), help="SUT profile.")
@click.option(
    "--reference", is_flag=True, help="Start the reference SUT the profile describes as its own process (`serve`)."
)
@click.option("--fault", "faults", multiple=True, help="With --reference: switch on a fault (repeatable).")
@click.option("--users", "-u", type=click.IntRange(1), default=10, show_default=True, help="Concurrent users.")
@click.option("--spawn-rate", "-r", type=click.FloatRange(min=0.001), help="Users started per second [all at once].")
@click.option("--run-time", "-t", default="20s", show_default=True, help="How long, e.g. 20s, 5m, 1h30m.")
@click.option("--round-trips", "-k", type=click.IntRange(0), default=1, show_default=True, help="UP round trips.")
@click.option("--think-time", type=click.FloatRange(0), default=0.0, show_default=True, help="s between sessions.")
@click.option(
    "--weight",
    "weights",
    multiple=True,
    metavar="CLASS=W",
    help="Task weight of a user class (EmsdpUe, EasUser towards an HSE; EmseUser towards an EMKS); 0 leaves it "
    "out. Default: EmsdpUe=1 (EasUser=0) towards an HSE, EmseUser=1 towards an EMKS.",
)
@click.option("--timeout", "reply_timeout", type=click.FloatRange(min=0.001), help="s per reply [pixit.reply_timeout].")
@click.option("--reports", default="reports", show_default=True, help="Folder for the run folder.")
@click.option("--seed", type=int, help="Seed of Locust's random choices (recorded in load.json).")
@click.option("--workers", type=click.IntRange(1), help="Run a master and this many local worker processes.")
@click.option("--master", is_flag=True, help="Run as the master of workers started elsewhere (--worker).")
@click.option("--expect-workers", type=click.IntRange(1), help="Master: start once this many workers joined.")
@click.option("--worker", is_flag=True, help="Run as a worker of the master at --master-host.")
@click.option("--master-host", help="Worker: the master's host.")
@click.option("--master-port", type=click.IntRange(1, 65535), default=5557, show_default=True, help="Master's port.")
def load(
    profile_path: str,
    reference: bool,
    faults: tuple[str, ...],
    users: int,
    spawn_rate: float | None,
    run_time: str,
    round_trips: int,
    think_time: float,
    weights: tuple[str, ...],
    reply_timeout: float | None,
    reports: str,
    seed: int | None,
    workers: int | None,
    master: bool,
    expect_workers: int | None,
    worker: bool,
    master_host: str | None,
    master_port: int,
) -> int:
    """Load the SUT with Locust (headless, or distributed as a master and workers), every reply verified, and
    write reports/load-<run-id>/: load.json, report.html (throughput and latency over time), Locust's CSV and
    HTML. EMSDP UEs each use a subscriber of their own (pixit.subscriber_ranges).

    Exit code: 0 every session verified, 1 a verification or transport failure, 2 bad input, 3 the SUT does not
    answer or Locust failed.
    """
    from conformance.profile import ProfileError, load_profile

    if worker + master + bool(workers) > 1:
        raise click.UsageError("give one of --worker, --master and --workers")
    if worker and not (master_host and expect_workers):
        raise click.UsageError(
            "--worker needs --master-host (where the master runs) and --expect-workers (how many workers the run "
            "has: each draws its own subscribers)"
        )
    if faults and not reference:
        raise click.UsageError("--fault switches on a fault of the reference SUT: add --reference")
    if expect_workers and not (master or worker):
        raise click.UsageError("--expect-workers is for --master (and a --worker: how many workers the run has)")
    try:
        span = seconds(run_time)
        profile = load_profile(profile_path)
    except ValueError as exc:  # ProfileError is one
        raise click.UsageError(str(exc)) from None
    chosen = _weights(weights, profile.sut.kind)
    processes = workers or (expect_workers if master or worker else None) or 1
    if profile.sut.kind == "hse" and chosen.get("EmsdpUe", 1) > 0:
        try:
            LoadSubscribers(profile).check(users, processes)
        except NotEnoughSubscribers as exc:
            raise click.UsageError(f"{profile_path}: {exc}") from None
    if faults:
        from conformance.faults import UnknownFault, parse_faults

        try:
            parse_faults(faults)
        except UnknownFault as exc:
            raise click.UsageError(f"--fault: {exc}") from None
    settings = LoadSettings(
        profile=str(Path(profile_path).resolve()),
        round_trips=round_trips,
        think_time=think_time,
        reply_timeout=reply_timeout,
        weights=chosen,
        seed=seed if seed is not None else random.randrange(2**31),
        series_interval=max(1.0, span / 300),
    )
    if worker:
        return _run_worker(settings, processes, master_host or "", master_port)
    run = LoadRun(settings, Path(reports), users, spawn_rate or float(users), run_time, span, processes)
    try:
        return run.execute(
            reference=reference, faults=faults, master=master, local_workers=workers, master_port=master_port
        )
    except ProfileError as exc:
        raise click.UsageError(str(exc)) from None
    except LoadError as exc:
        click.echo(f"best-conformance: error: {exc}", err=True)
        click.echo(f"see {run.folder}", err=True)
        return EXIT_HARNESS


def _weights(given: tuple[str, ...], kind: str) -> dict[str, int]:
    known = {"hse": ("EmsdpUe", "EasUser"), "emks": ("EmseUser",)}.get(kind, ())
    if not known:
        raise click.UsageError(f"load drives an HSE or an EMKS; this profile's sut.kind is {kind!r}")
    chosen: dict[str, int] = {}
    for text in given:
        name, _, weight = text.partition("=")
        if name not in known or not weight.isdigit():
            raise click.UsageError(f"--weight {text!r}: give CLASS=W with CLASS one of {', '.join(known)}, W >= 0")
        chosen[name] = int(weight)
    if given and not any(chosen.get(n, 0) for n in known):
        raise click.UsageError("--weight: every user class has weight 0, nothing would run")
    return chosen


def _environment(settings: LoadSettings, processes: int) -> dict[str, str]:
    """The Locust process's environment: the settings, and what the key-server users read (keyserver_users)."""
    return {
        **os.environ,
        **settings.to_environment(),
        "BEST_LOAD_PROFILE": settings.profile,
        "BEST_LOAD_WORKERS": str(processes),
        "PYTHONUNBUFFERED": "1",
    }


def _run_worker(settings: LoadSettings, processes: int, master_host: str, master_port: int) -> int:
    """A worker: Locust joins the master and runs the users it is given; the master writes the run folder."""
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker"]
    command += ["--master-host", master_host, "--master-port", str(master_port), "--loglevel", "WARNING"]
    return subprocess.call(command, env=_environment(settings, processes))


class LoadRun:
    """One load run into its run folder (local, or the master of a distributed run)."""

    def __init__(
        self,
        settings: LoadSettings,
        reports: Path,
        users: int,
        spawn_rate: float,
        run_time: str,
        span: float,
        processes: int,
    ):
        self.folder = new_run_dir(reports)
        self.settings = settings
        self.users, self.spawn_rate, self.run_time, self.span, self.processes = (
            users,
            spawn_rate,
            run_time,
            span,
            processes,
        )
        self.served: Any = None

    def execute(
        self, *, reference: bool, faults: tuple[str, ...], master: bool, local_workers: int | None, master_port: int
    ) -> int:
        from conformance.load.summary import write_outputs
        from conformance.profile import load_profile

        shipped = self.settings.profile
        with contextlib.ExitStack() as stack:
            if reference:
                profile_path = self._serve(shipped, faults)
                stack.callback(self._stop_reference)
                self.settings = dataclasses.replace(self.settings, profile=str(profile_path))
            profile = load_profile(self.settings.profile)
            self._preflight(profile)
            raw_path = self.folder / "locust-raw.json"
            self.settings = dataclasses.replace(self.settings, raw=str(raw_path))
            started = time.time()
            code = self._locust(master, local_workers, master_port)
            if not raw_path.is_file():
                raise LoadError(f"Locust ended (exit {code}) without writing its measurements; see locust.log")
            died = self.served.died_at if self.served is not None else None
        summary = write_outputs(
            self.folder,
            json.loads(raw_path.read_text(encoding="utf-8")),
            settings=self.settings,
            profile=profile,
            shipped=shipped,
            faults=faults,
            requested={"users": self.users, "spawn_rate": self.spawn_rate, "run_time": self.run_time},
            started=started,
            reference_died_at=died,
        )
        raw_path.unlink()
        self._print(summary)
        return EXIT_PASS if summary["outcome"] == "pass" else EXIT_FAIL

    # ---- the SUT ---------------------------------------------------------------------------------------------

    def _serve(self, shipped: str, faults: tuple[str, ...]) -> Path:
        """The reference as its own process, reached through the profile a lab writes for it."""
        from conformance.profile import load_profile
        from conformance.reference.process import ServedReference, ServeFailed

        kind = load_profile(shipped).sut.kind
        self.served = ServedReference(kind, self.folder / "reference", Path(shipped), faults, launch=_quiet_serve)
        try:
            self.served.start()
        except ServeFailed as exc:
            raise LoadError(f"the reference {kind.upper()} did not start: {exc}") from None
        return self.served.write_profile(self.served.profile_data())

    def _stop_reference(self) -> None:
        if self.served is not None:
            self.served.stop()

    def _preflight(self, profile: Any) -> None:
        """One verified session (HSE) or a TLS connection (key server) before the load: an SUT that does not
        answer, or a profile whose keys or binding do not match it, is said in one line, not as a run of
        failures."""
        from conformance.load.emsdp_client import EmsdpUe, LoadContext, UdpLink
        from conformance.load.outcome import TransportFailure, VerificationFailure

        if profile.sut.kind != "hse":
            self._reach_key_server(profile)
            return
        context = LoadContext(profile, self.settings.reply_timeout, self.settings.payload_bytes)
        subscribers = LoadSubscribers(profile)
        ue = EmsdpUe(context, subscribers.at(subscribers.count - 1), UdpLink(context.hse))
        try:
            ue.run_session(lambda name: _nothing(name), 1 if self.settings.round_trips else 0)
        except TransportFailure as exc:
            raise LoadError(
                f"the HSE at {context.hse[0]}:{context.hse[1]} (endpoints.hse) does not serve: {exc}"
            ) from None
        except VerificationFailure as exc:
            raise LoadError(
                f"a first session with the HSE at {context.hse[0]}:{context.hse[1]} does not verify ({exc}): check "
                "the profile's subscribers and binding against the SUT before loading it"
            ) from None
        finally:
            ue.link.close()

    def _reach_key_server(self, profile: Any) -> None:
        import socket
        from urllib.parse import urlsplit

        url = profile.endpoints.key_server
        if not url:
            raise LoadError("the profile names no key server (endpoints.key_server)")
        parts = urlsplit(url)
        try:
            socket.create_connection((parts.hostname, parts.port or 443), timeout=5).close()
        except OSError as exc:
            raise LoadError(f"the key server at {url} (endpoints.key_server) does not answer: {exc}") from None

    # ---- Locust ----------------------------------------------------------------------------------------------

    def _locust(self, master: bool, local_workers: int | None, master_port: int) -> int:
        folder = self.folder
        command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary"]
        command += ["-u", str(self.users), "-r", str(self.spawn_rate), "-t", self.run_time]
        command += ["--stop-timeout", str(STOP_TIMEOUT), "--csv", str(folder / "locust"), "--csv-full-history"]
        command += [
            "--html",
            str(folder / "locust.html"),
            "--loglevel",
            "WARNING",
            "--logfile",
            str(folder / "locust.log"),
        ]
        command += ["--exit-code-on-error", "0"]
        if local_workers:
            command += ["--processes", str(local_workers)]
        if master:
            command += ["--master", "--master-bind-port", str(master_port)]
            command += ["--expect-workers", str(self.processes), "--expect-workers-max-wait", "120"]
        timeout = self.span + STOP_TIMEOUT + STARTUP_SLACK + (120 if master else 0)
        with open(folder / "locust.out", "wb") as out:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=_environment(self.settings, self.processes),
            )
            try:
                return process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise LoadError(f"Locust did not finish within {timeout:.0f} s; see locust.out") from None

    def _print(self, summary: dict[str, Any]) -> None:
        sessions, failures, requests = summary["sessions"], summary["failures"], summary["requests"]
        done = (
            f"{sessions['ok']} sessions verified, {sessions['failed']} failed; {sessions['per_second']:.1f} verified "
            f"sessions/s, "
            if sessions["ok"] or sessions["failed"]
            else f"{requests['total'] - requests['failures']} requests verified, {requests['failures']} failed; "
        )
        click.echo(
            f"{done}{requests['per_second']:.1f} requests/s over {summary['measured_s']:.1f} s "
            f"({summary['users']} users, {summary['workers']} worker(s))",
            err=True,
        )
        click.echo(
            f"failures: {failures['verification']} verification, {failures['transport']} transport",
            err=True,
        )
        for entry in failures["by_reason"][:5]:
            click.echo(f"  {entry['count']} x {entry['class']}: {entry['kind']}: {entry['example']}", err=True)
        if summary.get("reference", {}) and summary["reference"].get("died_at"):
            click.echo("the reference SUT died during the run (see reference/sut/serve.log)", err=True)
        click.echo(f"outcome: {summary['outcome'].upper()}; {self.folder}/report.html", err=True)


@contextlib.contextmanager
def _nothing(name: str) -> Any:
    """The preflight's step: no Locust to tell, the failure propagates."""
    yield {"length": 0}


def _quiet_serve(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """ServedReference's launcher: `serve ARGS` without its per-datagram log (serve_quietly)."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "conformance.load.serve_quietly", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env={**os.environ, **env},
        )


__all__ = ["EXIT_USAGE", "LoadError", "load"]
