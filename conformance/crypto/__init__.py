"""Independent derivations of every key the harness checks.

Nothing here imports the binding: callers pass FC values, parameters and lengths in, so the same code serves
the spec's confirmed values and a profile's overrides alike.
"""
