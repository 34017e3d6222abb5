"""Death of a reference SUT: the moment a dead fault took effect, logged so that a tester (and the selftest) can
tell which cases ran against a dead SUT, whether the SUT runs embedded or as its own process (`serve` prints
the log)."""

from __future__ import annotations

import logging
import re
import time

DEATH_LOGGER = "best-conformance.reference"
_DEATH_LINE = re.compile(r"\b(?P<sut>[\w ]+?) died at (?P<at>\d+(?:\.\d+)?) \(epoch s\), fault (?P<fault>\w+)")


def log_death(sut: str, fault: str, what: str, at: float | None = None) -> float:
    """Log that the SUT (e.g. 'reference HSE') died by `fault` at `at` (now if None); returns the epoch time."""
    at = time.time() if at is None else at
    logging.getLogger(DEATH_LOGGER).warning("%s died at %.6f (epoch s), fault %s: %s", sut, at, fault, what)
    return at


def death_time(text: str) -> float | None:
    """The first death logged in `text` (a log, or one line of it), as epoch seconds; None if none."""
    match = _DEATH_LINE.search(text)
    return float(match["at"]) if match else None
