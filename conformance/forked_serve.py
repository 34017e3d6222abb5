"""`best-conformance serve` in a process forked from a warm fork server, for the selftest's many served references.

A served reference is its own process either way; started as a command it first spends about a second of CPU
importing the harness and compiling the key-server schema, which the selftest would pay some 140 times. Python's
fork server (multiprocessing "forkserver") imports the command's modules once (`set_forkserver_preload`), warming
them, and forks each reference from it: the child runs the very command line, `python -m conformance.cli serve
...` (runpy, as `-m` does), with its output in the reference's log and its own environment, and is stopped by
signals as a command's process is.
"""

from __future__ import annotations

import multiprocessing
import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

COMMAND = "conformance.cli"  # the module `python -m` runs: the fork server imports it, each child runs it
# what the fork server imports before forking: the command, the references `serve` starts lazily (warm: with
# the default binding's key-server schema compiled), this module
PRELOAD = [COMMAND, "conformance.reference.warm", __name__]
_CONTEXT: Any = None


def context() -> Any:
    """The fork-server context, preloading this module (made once per process that forks references)."""
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = multiprocessing.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(PRELOAD)
    return _CONTEXT


def serve_main(args: list[str], log: str, env: dict[str, str]) -> None:
    """The child: stdout and stderr to the log (line by line, as PYTHONUNBUFFERED makes a command's), its own
    environment, then `python -m conformance.cli ARGS`."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115  (lives as the process)
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    os.environ.update(env)
    sys.argv = [COMMAND, *args]
    runpy.run_module(COMMAND, run_name="__main__", alter_sys=True)


def launch(args: list[str], log: Path, env: dict[str, str]) -> Forked:
    """ServedReference's launcher for `serve ARGS` (args as after `best-conformance`)."""
    return Forked(args, log, env)


class Forked:
    """A forked `serve` with the part of subprocess.Popen's interface ServedReference uses."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str]):
        self._process = context().Process(target=serve_main, args=(args, str(log), env), daemon=True)
        self._process.start()
        self.pid = self._process.pid

    def poll(self) -> int | None:
        return self._process.exitcode

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def send_signal(self, signum: int) -> None:
        if self._process.exitcode is None and self.pid is not None:
            os.kill(self.pid, signum)

    def wait(self, timeout: float | None = None) -> int | None:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(["serve"], timeout or 0.0)
        return self._process.exitcode

    def kill(self) -> None:
        self._process.kill()
