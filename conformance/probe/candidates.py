"""The values the probe tries for each open point, and the groups it searches them in.

Candidates are data: a parameter of the binding with `alternatives:` (conformance/binding/default.yaml) is
searched, every other one is taken as the harness reads it. The value the harness reads (the profile's binding)
comes first, then the default binding's value if the profile overrides it, then the alternatives in file order:
the search prefers the earlier of two values that fit equally, so the harness's own reading wins every tie.

Groups keep the search small. Parameters that can only be judged together are searched as their product (the
TLV tags: one numbering may move three tags at once, and each of them alone collides with another tag), the
groups one after the other. The stage says what judges a group: `layout` by whether the SUT's datagrams parse,
`protection` by whether its MACs (and ciphertexts) verify under the keys of the AKA run.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from conformance.binding import Binding

LAYOUT, PROTECTION, OTHER = "layout", "protection", "other"
MAX_GROUP_PRODUCT = 4096  # a group larger than this is a binding file asking for brute force: refused


@dataclass(frozen=True)
class Candidate:
    """One searched parameter: its values (the harness's reading first) and why each may be the SUT's."""

    key: str
    values: tuple[Any, ...]
    sources: tuple[str, ...]

    @property
    def base(self) -> Any:
        """The value the harness reads: what `default` means in the probe's statuses."""
        return self.values[0]

    @property
    def stage(self) -> str:
        if self.key.startswith("emsdp."):
            return LAYOUT
        if self.key.startswith(("protection.", "keys.")):
            return PROTECTION
        return OTHER

    @property
    def group(self) -> str:
        """Parameters of one group are searched as their product: a header, a tag table, one derivation, or the
        MAC/COUNT construction."""
        if self.stage == PROTECTION and self.key.startswith("protection."):
            return "protection"
        return self.key.rsplit(".", 1)[0]


def candidates_of(binding: Binding) -> dict[str, Candidate]:
    """Every parameter with alternatives, by key, in file order."""
    found: dict[str, Candidate] = {}
    for param in binding.with_alternatives():
        values: list[Any] = []
        sources: list[str] = []
        pairs = [(param.value, param.source)]
        if param.overridden_by:
            pairs.append((param.default, "the default binding"))
        pairs += [(a.value, a.source) for a in param.alternatives]
        for value, source in pairs:
            if value not in values:
                values.append(value)
                sources.append(source)
        found[param.key] = Candidate(param.key, tuple(values), tuple(sources))
    return found


def groups_of(candidates: Mapping[str, Candidate], stage: str) -> dict[str, list[Candidate]]:
    """The candidates of one stage by group, groups in file order."""
    grouped: dict[str, list[Candidate]] = {}
    for candidate in candidates.values():
        if candidate.stage == stage:
            grouped.setdefault(candidate.group, []).append(candidate)
    return grouped


def assignments(group: list[Candidate]) -> Iterator[dict[str, Any]]:
    """The group's product, the assignments with fewer departures from the harness's reading first (so the first
    of equally good assignments is the closest to it)."""
    size = 1
    for candidate in group:
        size *= len(candidate.values)
    if size > MAX_GROUP_PRODUCT:
        raise ValueError(
            f"the group {group[0].group} has {size} assignments (over {MAX_GROUP_PRODUCT}): too many alternatives"
        )
    indexed = itertools.product(*(range(len(c.values)) for c in group))
    for combo in sorted(indexed, key=lambda idx: (sum(1 for i in idx if i), idx)):
        yield {c.key: c.values[i] for c, i in zip(group, combo, strict=True)}
