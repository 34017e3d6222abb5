"""A live progress line for `best-conformance run`: cases done, the last verdict, and running totals."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class LiveProgress:
    """A pytest plugin object (pass it to pytest.main(plugins=[...])) that draws one updating line."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.counts: Counter[str] = Counter()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.task: Any = None
        self.said: set[str] = set()  # what was said at once about a SUT that does not answer

    def _start(self, total: int | None) -> None:
        if self.task is None:
            self.task = self.progress.add_task("collected", total=total)
            self.progress.start()

    def pytest_collection_finish(self, session: Any) -> None:
        if session.items:  # under xdist the controller collects nothing; the workers report their items
            self._start(len(session.items))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self._start(len(ids))

    def pytest_runtest_logreport(self, report: Any) -> None:
        verdict = dict(report.user_properties).get("verdict")
        if report.when != "call" and not (report.when == "setup" and report.skipped):
            return
        self._start(None)
        self._say_at_once(dict(report.user_properties).get("reason"), verdict)
        self.counts[verdict or report.outcome] += 1
        totals = " ".join(f"{name}={n}" for name, n in sorted(self.counts.items()))
        name = report.nodeid.rsplit("::", 1)[-1]
        self.progress.update(self.task, advance=1, description=f"{name:<14} {verdict or report.outcome:<13} {totals}")

    def _say_at_once(self, reason: str | None, verdict: str | None) -> None:
        """The first sign that nothing answers, and a stop, are worth a line of their own, not a minute later."""
        if not reason:
            return
        key = "stopped" if verdict == "not run" and reason.startswith("the run stopped") else "unanswered"
        if key not in self.said and (key == "stopped" or verdict != "not run"):
            self.said.add(key)
            lead = "" if key == "stopped" else "the SUT did not answer: "
            self.progress.console.print(f"{lead}{reason}", style="bold yellow", highlight=False, markup=False)

    def pytest_sessionfinish(self, session: Any) -> None:
        if self.task is not None:
            self.progress.stop()
