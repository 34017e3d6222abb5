"""A reference SUT as its own process (`best-conformance serve`), and the profile a lab writes for it.

This is the path labs use (design.md 7a): the SUT runs apart from the harness, which reaches it only through a
profile: endpoints, TLS files, trigger commands. The selftest proves the harness on it with the reference SUTs.

One folder holds everything of one served reference:

    sut/certs/            the reference's certificates (serve --certs): issued here first, so that the lab's
                          profile can name them and, for an EMSE, the harness's EMKS can trust its client
    sut/serve.log         its stderr: the exchange log, the banner, the moment a dead fault killed it
    sut/serve.pid         its process id (serve --pid-file), for the trigger commands
    sut/provision.inbox   EMKS: the provision trigger appends 'UE_ID RAND' here (serve --provision-inbox)
    sut/commands.inbox    UE: the triggers append 'session', 'send_data HEX', ... here (serve --command-inbox)
    lab/lab.yaml          the profile, as a lab writes it: endpoints, tls (files under lab/certs/), triggers
    cache/                the child's XDG_CACHE_HOME: nothing of the user's cache is read or written

The triggers are shell commands, as a lab's are: an EMSE registers on SIGUSR1 and deregisters on SIGUSR2; an
EMKS provisions the lines the provision trigger appends to its inbox on SIGUSR1, and a UE runs the commands its
triggers append to its inbox. A UE has no certificates: its lab profile names where the harness's HSE listens
(endpoints.hse, a port free when the profile is written), and `serve ue --hse` sends there.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from conformance.keyserver.certs import CertificateDirectory
from conformance.reference.death import death_time

STARTUP_TIMEOUT = 60.0  # s for `serve` to print its banner (imports take a second; two cores may be busy)
BANNER = re.compile(r"^reference (?P<kind>\w+) listening on (?P<where>.*)$", re.MULTILINE)
# the identities the suites present to each kind's key server besides the default one (pixit.eas_id/emse_id)
OTHER_CLIENTS = {"hse": ("eas2.example.com",), "emks": ("emse-2",), "emse": (), "ue": ()}
UE_COMMANDS = {
    "session": "session",
    "send_data": "send_data {data}",
    "manage_keys": "manage_keys",
    "terminate": "terminate",
}


def banner(kind: str, service: Any, faults: frozenset[str]) -> str:
    """The line `serve` prints once its reference listens, and what ServedReference.start waits for (BANNER):
    where it listens, where its certificates are, which faults are on."""
    if kind == "ue":  # no certificates: EMSDP only
        where = [f"UDP {service.address[0]}:{service.address[1]}", f"HSE {service.hse[0]}:{service.hse[1]}"]
    elif kind == "emse":
        where = [f"DTLS {service.address[0]}:{service.address[1]}", f"EMKS {service.emse.client.http.base_url}"]
    else:
        where = [f"key server {service.keyserver.url}"]
    if kind != "ue":
        where.append(f"certificates in {service.certs.directory}")
    if kind == "hse":
        where.insert(0, f"UDP {service.hse.address[0]}:{service.hse.address[1]}")
    return (
        f"reference {kind.upper()} listening on {'; '.join(where)}"
        f"{'; faults ' + ', '.join(sorted(faults)) if faults else ''}. Ctrl-C stops it."
    )


class ServeFailed(RuntimeError):
    """`serve` exited or printed no banner: its log says why."""


def free_port(host: str = "127.0.0.1", *, udp: bool = False) -> int:
    """A TCP (or UDP) port nothing listens on now (for a profile that must name its port before the listener
    starts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def cli_command(*args: str) -> list[str]:
    """`best-conformance ARGS` with this interpreter (the console script may not be on PATH)."""
    return [sys.executable, "-m", "conformance.cli", *args]


# How `serve` is started: (its arguments after `best-conformance`, the log for its stdout and stderr, environment
# variables to set) -> a process with subprocess.Popen's poll / wait / send_signal / kill / returncode / pid
Launch = Callable[[list[str], Path, dict[str, str]], Any]


def run_command(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`best-conformance ARGS` as a command: the way a lab starts it (and `serve`'s own tests)."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            cli_command(*args), stdin=subprocess.DEVNULL, stdout=out, stderr=out, env={**os.environ, **env}
        )


class ServedReference:
    """`best-conformance serve KIND` in `folder`, with the profile a lab would write for it."""

    def __init__(
        self, kind: str, folder: Path, profile: Path, faults: tuple[str, ...] = (), launch: Launch | None = None
    ):
        self.kind, self.folder, self.shipped, self.faults = kind, folder, profile, faults
        self.launch = launch or run_command
        self.sut, self.lab = folder / "sut", folder / "lab"
        self.certs = CertificateDirectory(self.sut / "certs")
        self.log, self.pid_file, self.inbox = (
            self.sut / "serve.log",
            self.sut / "serve.pid",
            self.sut / ("commands.inbox" if kind == "ue" else "provision.inbox"),
        )
        self.process: Any = None  # a subprocess.Popen, or what `launch` gives with its poll/wait/signals
        self.banner = ""
        self.udp: tuple[str, int] | None = None  # HSE: its EMSDP endpoint; EMSE: its DTLS endpoint
        self.key_server: str | None = None  # HSE, EMKS: the key server's URL
        # UE: where the harness's HSE will listen, chosen now: `serve ue` and the lab's profile both name it
        self.hse = ("127.0.0.1", free_port(udp=True)) if kind == "ue" else None
        self.lab.mkdir(parents=True, exist_ok=True)
        self.sut.mkdir(parents=True, exist_ok=True)
        self.identities: tuple[str, ...] = ()
        if kind != "ue":
            self._issue()

    # -- certificates ---------------------------------------------------------------------------------------

    def _issue(self) -> None:
        """Issue the reference's certificates before it starts and copy what the lab's profile names into
        lab/certs/: the CA, the server certificate (the HSE's key server, which also serves as the push
        receiver's; for an EMSE, the harness EMKS's) and the client certificates of the identities the suites use."""
        data = yaml.safe_load(self.shipped.read_text(encoding="utf-8"))
        pixit = data.get("pixit") or {}
        default = pixit.get("emse_id", "emse-1") if self.kind in ("emks", "emse") else pixit.get("eas_id")
        identities = (default or "eas.example.com", *OTHER_CLIENTS[self.kind])
        pairs = [("server", self.certs.server()), *((f"client-{i}", self.certs.client(i)) for i in identities)]
        files = {"ca.pem": self.certs.ca}
        for stem, pair in pairs:
            files.update({f"{stem}.pem": pair.cert, f"{stem}.key": pair.key})
        (self.lab / "certs").mkdir(exist_ok=True)
        for name, source in files.items():
            shutil.copyfile(source, self.lab / "certs" / name)
        self.identities = identities

    # -- the process ----------------------------------------------------------------------------------------

    def command(self, key_server: str | None = None) -> list[str]:
        return cli_command(*self.arguments(key_server))

    def arguments(self, key_server: str | None = None) -> list[str]:
        """`serve`'s arguments (after `best-conformance`) for this reference."""
        args = ["serve", self.kind, "--profile", str(self.shipped), "--port", "0", "--pid-file", str(self.pid_file)]
        if self.hse is not None:  # a UE: no certificates, its HSE and its command inbox
            args += ["--hse", f"{self.hse[0]}:{self.hse[1]}", "--command-inbox", str(self.inbox)]
        else:
            args += ["--certs", str(self.certs.directory)]
        if self.kind in ("hse", "emks"):
            args += ["--rest-port", "0"]
        if self.kind == "emks":
            args += ["--provision-inbox", str(self.inbox)]
        if self.kind == "emse":
            args += ["--key-server", str(key_server)]
        for fault in self.faults:
            args += ["--fault", fault]
        return args

    def start(self, key_server: str | None = None, timeout: float = STARTUP_TIMEOUT) -> None:
        """Start `serve` and wait for its banner. An EMSE registers with `key_server` at once."""
        if self.kind == "emse" and not key_server:
            raise ValueError("an EMSE needs the EMKS to register with")
        env = {"XDG_CACHE_HOME": str(self.folder / "cache"), "PYTHONUNBUFFERED": "1"}
        self.process = self.launch(self.arguments(key_server), self.log, env)
        deadline = time.monotonic() + timeout
        while True:
            match = BANNER.search(self.log_text())
            if match:
                self._where(match["where"])
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = " | ".join(self.log_text().strip().splitlines()[-3:])
                raise ServeFailed(f"serve {self.kind} printed no banner (exit {self.process.returncode}): {tail}")
            time.sleep(0.02)

    def _where(self, where: str) -> None:
        self.banner = where
        udp = re.search(r"(?:UDP|DTLS) ([\d.]+):(\d+)", where)
        url = re.search(r"key server (https://[^;\s]+)", where)
        self.udp = (udp[1], int(udp[2])) if udp else None
        self.key_server = url[1] if url else None
        if self.kind == "ue":
            return
        folder = re.search(r"certificates in (.+?)(?:; faults|\. Ctrl-C)", where)
        if folder is None or Path(folder[1]) != self.certs.directory:
            raise ServeFailed(f"serve {self.kind} does not use the certificates issued for it: {where}")

    def log_text(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def died_at(self) -> float | None:
        """When a dead fault killed the reference (epoch s), from its log; None while it lives."""
        return death_time(self.log_text())

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (serve stops cleanly), then SIGKILL if it does not; its exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> ServedReference:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the lab's profile ----------------------------------------------------------------------------------

    def profile_data(self, key_server: str | None = None, pixit: dict[str, Any] | None = None) -> dict[str, Any]:
        """The profile a lab writes for this SUT: the shipped reference profile's SUT, PICS and PIXIT, with
        the endpoints it listens on, the TLS files (relative to the profile's folder), the triggers and, if
        given, PIXIT values of the lab's own (e.g. the time the SUT has to answer, pixit.reply_timeout)."""
        data = yaml.safe_load(self.shipped.read_text(encoding="utf-8"))
        data.pop("reference", None)  # how the reference behaves is not the lab's business
        data["sut"] = {**data["sut"], "product": f"{data['sut']['product']} (best-conformance serve)"}
        if self.kind == "ue":
            return self._ue_profile(data, pixit)
        default, others = self.identities[0], self.identities[1:]
        endpoints: dict[str, Any] = {}
        tls: dict[str, Any] = {"ca": "certs/ca.pem"}
        triggers: dict[str, str] = {}
        pid = f"$(cat {shlex.quote(str(self.pid_file))})"
        if self.kind == "hse":
            assert self.udp is not None and self.key_server is not None, "start() first"
            endpoints = {"hse": {"host": self.udp[0], "port": self.udp[1]}, "key_server": self.key_server}
        elif self.kind == "emks":
            assert self.key_server is not None, "start() first"
            endpoints = {"key_server": self.key_server}
            inbox = shlex.quote(str(self.inbox))
            triggers["provision"] = f"echo {{ue_id}} {{rand}} >> {inbox} && kill -USR1 {pid}"
        else:  # the harness's EMKS: its server certificate from the CA the EMSE trusts; tls.ca issued the EMSE's
            endpoints = {"key_server": key_server or "https://127.0.0.1:0"}
            if self.udp is not None:
                endpoints["emse"] = {"host": self.udp[0], "port": self.udp[1]}
            triggers = {"register": f"kill -USR1 {pid}", "deregister": f"kill -USR2 {pid}"}
        if self.kind != "emse":  # the push receiver's server certificate: the reference's push client trusts its CA
            tls["receiver"] = {"cert": "certs/server.pem", "key": "certs/server.key"}
        if self.kind == "emse":
            tls.update(cert="certs/server.pem", key="certs/server.key")
        else:
            tls.update(cert=f"certs/client-{default}.pem", key=f"certs/client-{default}.key")
            tls["clients"] = {i: {"cert": f"certs/client-{i}.pem", "key": f"certs/client-{i}.key"} for i in others}
        data["endpoints"], data["tls"] = endpoints, tls
        data["pixit"] = {**data["pixit"], "triggers": triggers} if triggers else data["pixit"]
        data["pixit"].update(pixit or {})
        return data

    def _ue_profile(self, data: dict[str, Any], pixit: dict[str, Any] | None) -> dict[str, Any]:
        """A UE's lab profile: where the harness's HSE listens (what `serve ue --hse` sends to), and triggers that
        append a command line to the UE's inbox and signal it."""
        assert self.hse is not None
        pid, inbox = f"$(cat {shlex.quote(str(self.pid_file))})", shlex.quote(str(self.inbox))
        triggers = {name: f"echo {line} >> {inbox} && kill -USR1 {pid}" for name, line in UE_COMMANDS.items()}
        data["endpoints"] = {"hse": {"host": self.hse[0], "port": self.hse[1]}}
        data["pixit"] = {**data["pixit"], "triggers": triggers, **(pixit or {})}
        return data

    def write_profile(self, data: dict[str, Any]) -> Path:
        path = self.lab / "lab.yaml"
        header = f"# written by the selftest for `{shlex.join(self.command())}`, as a lab would\n"
        path.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path
