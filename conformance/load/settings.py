"""What `best-conformance load` hands to the Locust process, and which subscribers its users may draw.

Locust runs in a process of its own (gevent): the command passes it the settings as JSON in one environment
variable, so a worker started on another machine by its own `best-conformance load --worker` gets them the same
way, from its own command line.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from conformance.profile import LoadedProfile, Subscriber
from conformance.subscriber_ranges import nth, total

ENVIRONMENT = "BEST_LOAD_SETTINGS"
UP_SERVICES = ("up_integrity", "up_confidential")


@dataclass(frozen=True)
class LoadSettings:
    profile: str  # the profile the users read (with --reference: the lab profile of the served reference)
    round_trips: int = 1  # user-plane round trips per session
    think_time: float = 0.0  # s a user waits between two sessions
    reply_timeout: float | None = None  # s; None: the profile's pixit.reply_timeout
    payload_bytes: int = 32
    weights: dict[str, int] = field(default_factory=dict)  # Locust user class name -> weight (0: not run)
    seed: int | None = None
    series_interval: float = 1.0  # s per point of the time series in load.json
    raw: str | None = None  # where the master (or the lone process) writes what it measured

    def to_environment(self) -> dict[str, str]:
        return {ENVIRONMENT: json.dumps(asdict(self))}

    @classmethod
    def from_environment(cls) -> LoadSettings:
        text = os.environ.get(ENVIRONMENT)
        if not text:
            raise RuntimeError(f"{ENVIRONMENT} is not set: start Locust through `best-conformance load`")
        return cls(**json.loads(text))


class NotEnoughSubscribers(ValueError):
    """The profile cannot give every load user a subscriber of its own."""


class LoadSubscribers:
    """The subscribers load users draw from, one each, never shared (an SQN is state of one USIM): the profile's
    pixit.subscriber_ranges in order, else the listed subscribers an EMSDP session with user plane can use."""

    def __init__(self, profile: LoadedProfile):
        pixit = profile.pixit
        self.ranges = list(pixit.subscriber_ranges)
        self.listed: list[Subscriber] = []
        if not self.ranges:
            self.listed = [
                s
                for s in pixit.subscribers
                if s.modes and s.modes[0] == "ue_to_hse"
                and any(x in s.services for x in UP_SERVICES)
                and (not s.eas_ids or pixit.eas_id in s.eas_ids)
            ]  # fmt: skip
        self.count = total(self.ranges) if self.ranges else len(self.listed)
        self.source = "pixit.subscriber_ranges" if self.ranges else "pixit.subscribers (no subscriber_ranges given)"

    def at(self, index: int) -> Subscriber:
        if not 0 <= index < self.count:
            raise NotEnoughSubscribers(
                f"load user slot {index} has no subscriber: {self.source} gives {self.count}; add or widen "
                "pixit.subscriber_ranges"
            )
        return nth(self.ranges, index) if self.ranges else self.listed[index]

    def check(self, users: int, workers: int = 1) -> None:
        """Every user of every worker gets a subscriber of its own (slots are user * workers + worker index)."""
        needed = users + workers - 1
        if needed > self.count:
            raise NotEnoughSubscribers(
                f"{users} users need {needed} distinct subscribers and {self.source} gives {self.count}: add "
                "pixit.subscriber_ranges to the profile (e.g. as profiles/reference-hse.yaml does) or lower --users"
            )


def slot(user_number: int, worker_index: int, workers: int) -> int:
    """The subscriber slot of a process's n-th user: interleaved by worker, so that master and workers never
    hand one subscriber to two users."""
    return user_number * max(1, workers) + worker_index
