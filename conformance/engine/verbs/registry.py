"""Where step verbs are registered: a verb is a small function (context, arguments) with the JSON Schema of
what its steps take; the linter checks every step against it, the runner calls it. The verb modules of
`engine.verbs` register themselves here on import."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from conformance.engine.context import Context
from conformance.engine.results import SutAbsent
from conformance.engine.schema import Schema
from conformance.roles.errors import PortUnreachable

VERBS: dict[str, Callable[[Context, dict[str, Any]], None]] = {}
VERB_SCHEMAS: dict[str, Schema] = {}  # name -> JSON Schema of what the verb's steps take (engine.schema)


def verb(
    name: str, schema: Schema | None = None
) -> Callable[[Callable[[Context, dict[str, Any]], None]], Callable[[Context, dict[str, Any]], None]]:
    """Register a step verb under `name`, with the JSON Schema of what its steps take: the linter checks every
    step against it (engine.schema)."""

    def register(fn: Callable[[Context, dict[str, Any]], None]) -> Callable[[Context, dict[str, Any]], None]:
        @functools.wraps(fn)
        def step(ctx: Context, args: dict[str, Any]) -> None:
            try:
                fn(ctx, args)
            except PortUnreachable as exc:  # whatever the step did, the SUT is not there: nothing to judge
                raise SutAbsent(str(exc)) from None

        VERBS[name] = step
        if schema is not None:
            VERB_SCHEMAS[name] = schema
        return fn

    return register
