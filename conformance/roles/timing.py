"""How long the UE waits: reply timeouts and silence windows, fixed or derived from the SUT's measured round trip.

A silence proves something only if the window was long enough for the SUT to have reacted; a reply timeout only
has to outlast the SUT's slowest answer. For a lab's SUT both come from the profile (pixit.reply_timeout, the
cases' `within`, cut to pixit.silence_window if the lab gives one). With `pixit.timing: measured` (the embedded
references, and the references the selftest serves on this host), the windows are derived from what this process
measured on the path: FACTOR times the slowest of the last SAMPLES round trips to the SUT's endpoint, at least the
floors, never longer than the fixed values. Before the first answer, the fixed values hold. Each interface is
measured on its own: EMSDP (a message of the UE to the answer handed out), the key server's HTTPS (a request to
its response, a connection's TLS set-up included) and the EMSE's DTLS (a whole handshake). A case's `within` for
an answer the SUT sends on a timer of its own (not a round trip) is never cut.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

FACTOR = 20  # the window, in slowest round trips: the SUT's own work (AKA, key derivation) is in each sample
REPLY_FLOOR = 0.5  # s: a measured reply timeout is never shorter (scheduling on a loaded host, GC pauses)
SILENCE_FLOOR = 0.1  # s: nor a measured silence window (a reaction comes within milliseconds on this host)
SAMPLES = 32  # round trips kept per endpoint: a slow phase ages out, a single slow answer lengthens for a while

# An endpoint: (host, port) of the SUT's EMSDP endpoint, or ("https" | "dtls", host, port) of another interface
Endpoint = tuple[Any, ...]
# SUT endpoint -> its latest round trips (s), measured by any role of this process
_ROUND_TRIPS: dict[Endpoint, deque[float]] = {}


def record(endpoint: Endpoint, seconds: float) -> None:
    """A round trip measured to `endpoint`: from a message of the harness to the answer it was handed."""
    _ROUND_TRIPS.setdefault(endpoint, deque(maxlen=SAMPLES)).append(seconds)


def slowest(endpoint: Endpoint) -> float | None:
    """The slowest of the recent round trips to `endpoint`, or None before the first."""
    seen = _ROUND_TRIPS.get(endpoint)
    return max(seen) if seen else None


@dataclass(frozen=True)
class Timing:
    """The profile's timing for one SUT endpoint."""

    endpoint: Endpoint
    reply_timeout: float  # pixit.reply_timeout
    silence_window: float | None = None  # pixit.silence_window: the cases' silence windows are cut to it
    measured: bool = False  # pixit.timing == "measured"

    def reply(self) -> float:
        """How long to wait for an answer when the case does not say."""
        return self._measured(self.reply_timeout, REPLY_FLOOR)

    def silence(self, within: float | None) -> float:
        """How long to listen for silence (or for no service) when the case asks for `within` (None: the reply
        timeout)."""
        window = self.reply_timeout if within is None else within
        if self.silence_window is not None:
            window = min(window, self.silence_window)
        return self._measured(window, SILENCE_FLOOR)

    def record(self, seconds: float) -> None:
        """A round trip measured on this endpoint (kept whether or not this profile's timing is measured)."""
        record(self.endpoint, seconds)

    def _measured(self, fixed: float, floor: float) -> float:
        rtt = slowest(self.endpoint) if self.measured else None
        return fixed if rtt is None else min(fixed, max(floor, FACTOR * rtt))
