"""The EMSDP UE as a Locust user: one subscriber of its own, one session per task, every exchange a request event.

Each user takes the next subscriber slot of its process (settings.slot: worker w of W takes slots w, w + W, ...)
from the start of the profile's subscribers (the EAS users of keyserver_users take theirs from the end), so no two
users of a run, whatever process they run in, share a USIM and its SQN.
"""

from __future__ import annotations

import functools
import itertools
import time
from typing import Any

from locust import User, constant, task

from conformance.load import keyserver_users
from conformance.load.emsdp_client import EmsdpUe, LoadContext, UdpLink
from conformance.load.metrics import Collector
from conformance.load.outcome import TransportFailure, VerificationFailure, exchange
from conformance.load.settings import LoadSettings, LoadSubscribers, slot
from conformance.profile import load_profile

COLLECTOR = Collector()  # this process's measurements (locustfile hooks it to Locust's events)
_STARTED = itertools.count()  # this process's EMSDP users, in the order they start


@functools.cache
def settings() -> LoadSettings:
    return LoadSettings.from_environment()


@functools.cache
def shared() -> tuple[LoadContext, LoadSubscribers]:
    """The process's profile, codec, keys and subscribers, made once."""
    config = settings()
    profile = load_profile(config.profile)
    return LoadContext(profile, config.reply_timeout, config.payload_bytes), LoadSubscribers(profile)


class EmsdpUeUser(User):
    """A BEST device: Session Request, Session Start verified, Start Confirmation, k user-plane round trips,
    Terminate; then it thinks and starts the next session."""

    wait_time = constant(0)

    def on_start(self) -> None:
        context, subscribers = shared()
        worker, workers = keyserver_users.worker_slot(self.environment)
        own = subscribers.at(slot(next(_STARTED), worker, workers))
        self.ue = EmsdpUe(context, own, UdpLink(context.hse))
        self.round_trips = settings().round_trips

    def on_stop(self) -> None:
        self.ue.link.close()

    def step(self, name: str) -> Any:
        return exchange(self.environment, "EMSDP", name)

    @task
    def session(self) -> None:
        start = time.perf_counter()
        try:
            self.ue.run_session(self.step, self.round_trips)
        except (VerificationFailure, TransportFailure):  # reported by exchange()
            COLLECTOR.session(False, (time.perf_counter() - start) * 1000.0)
            # a fresh port: a late answer of this session must not be read as one of the next
            self.ue.link.close()
            self.ue.link = UdpLink(self.ue.context.hse)
            return
        # (a run that ends mid-session kills the greenlet: GreenletExit passes through, and counts nothing)
        COLLECTOR.session(True, (time.perf_counter() - start) * 1000.0)
