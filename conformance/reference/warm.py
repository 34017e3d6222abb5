"""Imported by the selftest's fork server (forked_serve.PRELOAD), never by `serve` itself: the modules `serve`
imports lazily, and the default binding's key-server schema compiled (0.2 s), so that every reference forked from
it starts with them."""

import conformance.reference.services  # noqa: F401  (imported for the forked children)
from conformance.binding import load_binding
from conformance.keyserver.schema import keyserver_schema

keyserver_schema(load_binding())
