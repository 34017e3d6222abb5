"""A YAML loader that keeps line numbers, so that a suite or ledger problem names the line it is on."""

from __future__ import annotations

from typing import Any

import yaml

# libyaml's parser when PyYAML was built with it (the wheels are): the suites and the ledger load ~5x faster, and
# its nodes carry the same marks
_BASE: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class LineLoader(_BASE):  # type: ignore[misc,valid-type]
    """Records the line of every mapping, so errors can point at it."""


def _construct_mapping(loader: LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
