"""What a load run measures beside Locust's own statistics, in a form master and workers can merge.

Locust rounds response times under 100 ms to whole milliseconds, and on loopback an EMSDP exchange takes a fraction
of one; it keeps no time series of sessions and does not tell a wrong answer from no answer. So every request event
also lands here: latencies in histograms of two significant digits (a percentile is then within 5 %), counts per
time slot, sessions, and failures grouped by reason and by class (verification or transport). A worker sends what
it gathered with each report to the master (`drain`), which `merge`s it.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any

VERIFICATION, TRANSPORT = "verification", "transport"
_NUMBERS = re.compile(r"\b(?:[0-9a-f]{8,}|\d+)\b")


def bucket(ms: float) -> str:
    """A latency's histogram key: two significant digits, in ms."""
    return f"{ms:.2g}"


def percentile(histogram: dict[str, int], q: float) -> float | None:
    """The q-quantile (0..1) of a histogram; None when it is empty."""
    total = sum(histogram.values())
    if not total:
        return None
    rank, seen = q * total, 0
    for key, count in sorted(((float(k), n) for k, n in histogram.items())):
        seen += count
        if seen >= rank:
            return key
    return max(float(k) for k in histogram)


def failure_class(exception: BaseException) -> str:
    return VERIFICATION if type(exception).__name__ == "VerificationFailure" else TRANSPORT


def reason_key(text: str) -> str:
    """A failure's reason with its values (counters, ids, hex) set aside, so that alike failures group."""
    return _NUMBERS.sub("N", text)


class Collector:
    """Requests, sessions and failures of one process since its last `drain`, by time slot of `interval` s."""

    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self.reset()

    def reset(self) -> None:
        self.kinds: dict[str, dict[str, Any]] = {}  # "TYPE name" -> count, failures, histogram
        self.slots: dict[str, dict[str, Any]] = {}  # str(slot) -> requests, failures, sessions, ..., histogram
        self.failures: dict[str, dict[str, Any]] = {}  # class|kind|reason -> count, example
        self.sessions: dict[str, Any] = {"ok": 0, "failed": 0, "histogram": {}}

    def _slot(self) -> dict[str, Any]:
        key = str(int(time.time() // self.interval))
        slot = self.slots.get(key)
        if slot is None:
            slot = self.slots[key] = Counter()
            slot["histogram"] = Counter()
        return slot

    def request(self, request_type: str, name: str, response_time: float, exception: BaseException | None) -> None:
        """One request event (Locust's events.request)."""
        kind = self.kinds.setdefault(f"{request_type} {name}", {"count": 0, "failures": 0, "histogram": Counter()})
        kind["count"] += 1
        key = bucket(response_time)
        kind["histogram"][key] += 1
        slot = self._slot()
        slot["requests"] += 1
        slot["histogram"][key] += 1
        if exception is not None:
            kind["failures"] += 1
            cls = failure_class(exception)
            slot[f"{cls}_failures"] += 1
            text = str(exception) or type(exception).__name__
            entry = self.failures.setdefault(
                f"{cls}|{request_type} {name}|{reason_key(text)}", {"count": 0, "example": text}
            )
            entry["count"] += 1

    def session(self, ok: bool, duration_ms: float) -> None:
        """A whole session ended: verified end to end (ok) or not."""
        self.sessions["ok" if ok else "failed"] += 1
        histogram = self.sessions["histogram"]
        histogram[bucket(duration_ms)] = histogram.get(bucket(duration_ms), 0) + 1
        self._slot()["sessions_ok" if ok else "sessions_failed"] += 1

    def drain(self) -> dict[str, Any]:
        """What was gathered since the last drain, as plain data (for the master), and start afresh."""
        data = self.dump()
        self.reset()
        return data

    def dump(self) -> dict[str, Any]:
        return {
            "interval": self.interval,
            "kinds": {k: {**v, "histogram": dict(v["histogram"])} for k, v in self.kinds.items()},
            "slots": {k: {**dict(v), "histogram": dict(v["histogram"])} for k, v in self.slots.items()},
            "failures": {k: dict(v) for k, v in self.failures.items()},
            "sessions": {**self.sessions, "histogram": dict(self.sessions["histogram"])},
        }

    def merge(self, data: dict[str, Any] | None) -> None:
        """Add what another process gathered (its `drain`)."""
        if not data:
            return
        for name, other in data["kinds"].items():
            kind = self.kinds.setdefault(name, {"count": 0, "failures": 0, "histogram": Counter()})
            kind["count"] += other["count"]
            kind["failures"] += other["failures"]
            kind["histogram"].update(other["histogram"])
        for key, other in data["slots"].items():
            slot = self.slots.get(key)
            if slot is None:
                slot = self.slots[key] = Counter()
                slot["histogram"] = Counter()
            slot["histogram"].update(other["histogram"])
            slot.update({k: v for k, v in other.items() if k != "histogram"})
        for key, other in data["failures"].items():
            entry = self.failures.setdefault(key, {"count": 0, "example": other["example"]})
            entry["count"] += other["count"]
        sessions = data["sessions"]
        self.sessions["ok"] += sessions["ok"]
        self.sessions["failed"] += sessions["failed"]
        for key, n in sessions["histogram"].items():
            self.sessions["histogram"][key] = self.sessions["histogram"].get(key, 0) + n
