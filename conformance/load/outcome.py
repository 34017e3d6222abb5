"""How a load user reports one exchange to Locust: timed, as a request event, failures classified.

Locust counts what `events.request` is told. A user times each exchange with `exchange(...)`; an exception raised
inside is the failure's reason. A VerificationFailure (the reply arrived but is wrong: a MAC, a counter, a key)
is kept apart from a transport failure (timeout, refused), so the summary can show both separately.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class VerificationFailure(Exception):
    """The SUT answered, and the answer is wrong (the message names the check and the values)."""


class TransportFailure(Exception):
    """No usable answer: a timeout, a refused connection, a reply of the wrong kind."""


@contextmanager
def exchange(environment: Any, kind: str, name: str) -> Iterator[dict[str, Any]]:
    """Time the block and fire one request event; the yielded dict may set `length` (octets received).

    `kind` is the Locust request_type (e.g. EMSDP, KEYS), `name` the message kind (e.g. "Session Request").
    A VerificationFailure or TransportFailure in the block is reported as the failure and raised again, so the
    rest of that session is not run (the user's task catches it); any other exception is a bug in the harness,
    is not reported as the SUT's failure, and propagates.
    """
    info: dict[str, Any] = {"length": 0}
    start = time.perf_counter()
    exception: Exception | None = None
    try:
        yield info
    except (VerificationFailure, TransportFailure) as failure:
        exception = failure
    environment.events.request.fire(
        request_type=kind,
        name=name,
        response_time=(time.perf_counter() - start) * 1000.0,
        response_length=info["length"],
        exception=exception,
        context={},
    )
    if exception is not None:
        raise exception
