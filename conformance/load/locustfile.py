"""The locustfile `best-conformance load` runs (`python -m locust -f <this file>`): the user classes the profile's
SUT kind calls for, with the task weights and think time of the settings, and the hooks that gather what load.json
reports (metrics.Collector): every request event, merged from the workers' reports, written by the master (or the
lone process) when Locust quits.

Offered: towards an HSE the EMSDP UE (EmsdpUe) and the EAS of the HSE's key server (EasUser); towards an EMKS the
EMSE (EmseUser). A weight of 0 leaves a user class out.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from locust import constant, events
from locust.runners import WorkerRunner

from conformance.load import keyserver_users, users
from conformance.load.users import COLLECTOR

SETTINGS = users.settings()
if SETTINGS.seed is not None:  # Locust's choices (which user class, task) are repeatable, as load.json records
    random.seed(SETTINGS.seed)
COLLECTOR.interval = SETTINGS.series_interval
KIND = users.shared()[0].profile.sut.kind
OFFERED: dict[str, dict[str, Any]] = {
    "hse": {"EmsdpUe": users.EmsdpUeUser, "EasUser": keyserver_users.EasUser},
    "emks": {"EmseUser": keyserver_users.EmseUser},
}
DEFAULT_WEIGHTS = {"EmsdpUe": 1, "EasUser": 0, "EmseUser": 1}


def _offer() -> None:
    """Put the chosen user classes, with their weights and think time, where Locust looks: this module's names
    (nothing else here may name a User class)."""
    for name, cls in OFFERED.get(KIND, {}).items():
        weight = SETTINGS.weights.get(name, DEFAULT_WEIGHTS[name])
        if weight > 0:
            globals()[name] = type(name, (cls,), {"weight": weight, "wait_time": constant(SETTINGS.think_time)})


_offer()

_PEAK = {"users": 0, "workers": 0, "started": None, "stopped": None}


@events.request.add_listener
def _on_request(request_type: str, name: str, response_time: float, exception: Any = None, **_: Any) -> None:
    COLLECTOR.request(request_type, name, response_time, exception)


@events.report_to_master.add_listener
def _on_report_to_master(client_id: str, data: dict[str, Any]) -> None:
    data["best_load"] = COLLECTOR.drain()


@events.worker_report.add_listener
def _on_worker_report(client_id: str, data: dict[str, Any]) -> None:
    COLLECTOR.merge(data.get("best_load"))


@events.spawning_complete.add_listener
def _on_spawned(user_count: int, **_: Any) -> None:
    _PEAK["users"] = max(_PEAK["users"], user_count)


@events.test_start.add_listener
def _on_test_start(environment: Any, **_: Any) -> None:
    import time

    _PEAK["started"] = _PEAK["started"] or time.time()


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_: Any) -> None:
    import time

    _PEAK["stopped"] = time.time()
    runner = environment.runner
    _PEAK["workers"] = max(_PEAK["workers"], getattr(runner, "worker_count", 1) if runner else 1)


@events.quitting.add_listener
def _on_quitting(environment: Any, **_: Any) -> None:
    """The master (or the lone process) writes what it measured; a worker has sent it with its reports."""
    if isinstance(environment.runner, WorkerRunner) or not SETTINGS.raw:
        return
    stats = environment.stats
    locust_stats = {
        f"{e.method} {e.name}": {
            "requests": e.num_requests,
            "failures": e.num_failures,
            "median_ms": e.median_response_time,
            "avg_ms": e.avg_response_time,
            "max_ms": e.max_response_time,
        }
        for e in stats.entries.values()
    }
    raw = {
        **COLLECTOR.dump(),
        "users": _PEAK["users"],
        "workers": _PEAK["workers"] or 1,
        "started": _PEAK["started"],
        "stopped": _PEAK["stopped"],
        "user_classes": sorted(n for n in OFFERED.get(KIND, {}) if n in globals()),
        "locust": {"total_requests": stats.total.num_requests, "total_failures": stats.total.num_failures},
        "locust_entries": locust_stats,
    }
    Path(SETTINGS.raw).write_text(json.dumps(raw), encoding="utf-8")
