"""Step verbs: what a case may do. Each is a small function (context, arguments); the docstring is what
`best-conformance explain` shows. Importing this package registers them all (`registry`)."""

from conformance.engine.verbs import emse, hse, key_client, ue  # noqa: F401  (each module registers its verbs)
from conformance.engine.verbs.registry import VERB_SCHEMAS, VERBS, verb

__all__ = ["VERBS", "VERB_SCHEMAS", "verb"]
