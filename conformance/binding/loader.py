"""Load the default binding, merge overrides, and check the result as a whole.

Overrides come from a profile's ``binding:`` section, a plugfest agreement file, or the command line. They
may be nested mappings or dotted keys, and each value may be bare or ``{value: ..., source: ...}`` so that an
agreement can say where its numbers come from. Every problem in every layer is reported at once.

A parameter of the defaults may list ``alternatives:``, other values a reader of the specifications may
plausibly have chosen, each with the reason (``{value: ..., source: ...}``): `best-conformance probe` searches
them to find the binding a SUT speaks. Overrides never carry alternatives; the effective binding keeps the
defaults' ones.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from conformance.binding.types import parse_type

DEFAULT_BINDING = "default.yaml"
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10x faster
_LEAF_KEYS = {"value", "type", "source", "doc", "alternatives"}
_BASIS_BY_PREFIX = (("TS ", "spec"), ("TR ", "spec"), ("seed ", "contribution"), ("assumed", "assumed"))


class BindingError(ValueError):
    """A binding or an override is wrong; `problems` lists each one with the key it concerns."""

    def __init__(self, problems: list[str], origin: str = "binding"):
        self.problems = problems
        self.origin = origin
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{origin}: {len(problems)} problem(s):\n{lines}")


@dataclass(frozen=True)
class Alternative:
    """Another value of a parameter that a reader of the specifications may plausibly have chosen, and why."""

    value: Any
    source: str


@dataclass(frozen=True)
class Parameter:
    """One open point: its value, declared type, and where the value comes from; `alternatives` are the other
    values the defaults name for it (those of the default binding, whatever an override made the value)."""

    key: str
    value: Any
    type: str
    source: str
    doc: str | None = None
    default: Any = None
    overridden_by: str | None = None
    alternatives: tuple[Alternative, ...] = ()

    @property
    def basis(self) -> str:
        """spec, contribution, assumed, or override: what a verdict resting on this value rests on."""
        if self.overridden_by:
            return "override"
        for prefix, basis in _BASIS_BY_PREFIX:
            if self.source.startswith(prefix):
                return basis
        return "unknown"

    @property
    def confirmed(self) -> bool:
        """True when the value comes from a specification clause, not from an assumption or an override."""
        return self.basis == "spec"


class Binding(Mapping[str, Any]):
    """The effective binding: a read-only mapping from dotted key to value, with provenance per key."""

    def __init__(self, params: Mapping[str, Parameter]):
        self._params = dict(params)

    def __getitem__(self, key: str) -> Any:
        try:
            return self._params[key].value
        except KeyError:
            raise KeyError(f"{key}: not a binding parameter{_suggest(key, self._params)}") from None

    def __contains__(self, key: object) -> bool:  # without building __getitem__'s suggestion for a missing key
        return key in self._params

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def param(self, key: str) -> Parameter:
        self[key]  # same error for an unknown key
        return self._params[key]

    def section(self, prefix: str) -> dict[str, Any]:
        """Values under a group, by their key relative to it: section('emsdp.tlv.tags')['imsi'] == 1."""
        head = prefix + "."
        found = {k[len(head) :]: p.value for k, p in self._params.items() if k.startswith(head)}
        if not found:
            raise KeyError(f"{prefix}: not a binding group{_suggest(prefix, _groups(self._params))}")
        return found

    def children(self, prefix: str) -> list[str]:
        """Names of the direct sub-groups or parameters of a group, in file order."""
        head = prefix + "."
        return list(dict.fromkeys(k[len(head) :].split(".")[0] for k in self._params if k.startswith(head)))

    def parameters(self) -> list[Parameter]:
        return list(self._params.values())

    def with_alternatives(self) -> list[Parameter]:
        """The parameters that name alternative values (what `best-conformance probe` searches), in file order."""
        return [p for p in self._params.values() if p.alternatives]

    def not_confirmed(self) -> list[Parameter]:
        """Parameters whose value is assumed, from a contribution, or overridden: verdicts resting on them are
        binding-dependent."""
        return [p for p in self._params.values() if not p.confirmed]

    def to_document(self) -> dict[str, dict[str, Any]]:
        """A JSON-ready record of the binding used, for reports."""
        doc: dict[str, dict[str, Any]] = {}
        for p in self._params.values():
            entry: dict[str, Any] = {"value": p.value, "source": p.source, "basis": p.basis}
            if p.overridden_by:
                entry.update(default=p.default, overridden_by=p.overridden_by)
            doc[p.key] = entry
        return doc


def load_binding(*overrides: Mapping[str, Any] | str | Path) -> Binding:
    """The default binding with each override layer applied in order (later layers win).

    A path is read as YAML; if it has a top-level ``binding:`` key (a SUT profile) only that part is used.
    """
    params = dict(_default_params())
    problems: list[str] = []
    for layer in overrides:
        origin, mapping = _read_layer(layer)
        layer_problems: list[str] = []
        for key, raw in _flatten(mapping, "", layer_problems):
            if key not in params:
                parent = next((k for k in _prefixes(key) if k in params), None)
                if parent:
                    layer_problems.append(
                        f"{parent}: is a parameter; give its value directly or as "
                        f"{{value: ..., source: ...}}, not {key.removeprefix(parent + '.')!r}"
                    )
                else:
                    layer_problems.append(f"{key}: unknown parameter{_suggest(key, params, _groups(params))}")
                continue
            current = params[key]
            value, source = (raw["value"], raw.get("source")) if isinstance(raw, dict) else (raw, None)
            type_problems = parse_type(current.type).check(value, key)
            if type_problems:
                layer_problems.extend(type_problems)
                continue
            params[key] = replace(
                current,
                value=value,
                source=str(source) if source else f"override from {origin}",
                default=current.default if current.overridden_by else current.value,
                overridden_by=origin,
            )
        problems.extend(f"{origin}: {p}" for p in layer_problems)
    if problems:
        raise BindingError(problems, "binding overrides")
    binding = Binding(params)
    consistency = check_consistency(binding)
    if consistency:
        raise BindingError(consistency, "binding is inconsistent")
    return binding


@functools.cache
def _default_params() -> dict[str, Parameter]:
    """The shipped defaults, parsed and checked once per process (Parameters are immutable; callers copy)."""
    text = resources.files("conformance.binding").joinpath(DEFAULT_BINDING).read_text(encoding="utf-8")
    params: dict[str, Parameter] = {}
    problems: list[str] = []
    for key, leaf in _flatten(yaml.load(text, Loader=_YAML_LOADER), "", problems, defaults=True):
        missing = {"value", "type", "source"} - leaf.keys()
        extra = leaf.keys() - _LEAF_KEYS
        if missing or extra:
            problems.append(
                f"{key}: a parameter needs value, type and source (missing {sorted(missing)}, "
                f"unexpected {sorted(extra)})"
            )
            continue
        try:
            param_type = parse_type(leaf["type"])
        except ValueError as exc:
            problems.append(f"{key}: {exc}")
            continue
        problems.extend(param_type.check(leaf["value"], key))
        alternatives, alternative_problems = _alternatives(key, leaf, param_type)
        problems.extend(alternative_problems)
        params[key] = Parameter(
            key, leaf["value"], leaf["type"], str(leaf["source"]), leaf.get("doc"), alternatives=alternatives
        )
    if problems:  # the shipped file itself is broken: a bug, but still named precisely
        raise BindingError(problems, f"conformance/binding/{DEFAULT_BINDING}")
    return params


def _alternatives(key: str, leaf: Mapping[str, Any], param_type: Any) -> tuple[tuple[Alternative, ...], list[str]]:
    """A parameter's `alternatives:`: each {value, source}, of the parameter's type, differing from its value and
    from each other; every problem names the key and the index."""
    raw = leaf.get("alternatives")
    if raw is None:
        return (), []
    where = f"{key}.alternatives"
    if not isinstance(raw, list) or not raw:
        return (), [f"{where}: expected a non-empty list of {{value: ..., source: ...}}, got {raw!r}"]
    problems: list[str] = []
    found: list[Alternative] = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, Mapping) or set(item) != {"value", "source"}:
            problems.append(f"{at}: expected {{value: ..., source: ...}}, got {item!r}")
            continue
        if not isinstance(item["source"], str) or not item["source"].strip():
            problems.append(f"{at}.source: say why a reader may pick this value, got {item['source']!r}")
            continue
        type_problems = param_type.check(item["value"], at)
        if type_problems:
            problems.extend(type_problems)
            continue
        if _same(item["value"], leaf["value"]):
            problems.append(f"{at}: {item['value']!r} is the parameter's value, not an alternative")
        elif any(_same(item["value"], a.value) for a in found):
            problems.append(f"{at}: {item['value']!r} is listed twice")
        else:
            found.append(Alternative(item["value"], item["source"]))
    return tuple(found), problems


def _same(a: Any, b: Any) -> bool:
    """Equal as binding values: 1 and True are not the same value."""
    return type(a) is type(b) and a == b


def _read_layer(layer: Mapping[str, Any] | str | Path) -> tuple[str, Mapping[str, Any]]:
    if isinstance(layer, Mapping):
        return "overrides", layer
    path = Path(layer)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BindingError([f"cannot read: {exc.strerror}"], str(path)) from None
    except yaml.YAMLError as exc:
        raise BindingError([f"not valid YAML: {exc}"], str(path)) from None
    if data is None:
        return str(path), {}
    if not isinstance(data, Mapping):
        raise BindingError(["expected a mapping of binding keys (or a profile with a 'binding:' section)"], str(path))
    if "binding" in data:
        data = data["binding"] or {}
        if not isinstance(data, Mapping):
            raise BindingError(["binding: expected a mapping of binding keys"], str(path))
    return str(path), data


def _flatten(node: Any, prefix: str, problems: list[str], defaults: bool = False) -> Iterator[tuple[str, Any]]:
    """Yield (dotted key, leaf) pairs. In the defaults a leaf is a mapping with 'value'; in an override any
    non-mapping is a leaf, and so is a mapping with 'value' (and optionally 'source')."""
    if not isinstance(node, Mapping):
        problems.append(f"{prefix or '(top)'}: expected a mapping, got {node!r}")
        return
    for name, child in node.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if isinstance(child, Mapping) and "value" in child:
            if not defaults and set(child) - {"value", "source"}:
                problems.append(f"{key}: an override has only 'value' and optionally 'source', got {sorted(child)}")
                continue
            yield key, dict(child)
        elif isinstance(child, Mapping) and not child and not defaults:
            problems.append(f"{key}: empty mapping; give a value, or {{value: ..., source: ...}}")
        elif isinstance(child, Mapping):
            yield from _flatten(child, key, problems, defaults)
        elif defaults:
            problems.append(f"{key}: expected a parameter mapping with value/type/source, got {child!r}")
        else:
            yield key, child


def _prefixes(key: str) -> list[str]:
    parts = key.split(".")
    return [".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def _groups(params: Mapping[str, Any]) -> set[str]:
    groups = set()
    for key in params:
        parts = key.split(".")
        groups.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return groups


def _suggest(key: str, *candidates: Any) -> str:
    pool = sorted({c for group in candidates for c in group})
    if key in pool:  # a group was given a value
        members = sorted(
            c[len(key) + 1 :] for c in pool if c.startswith(key + ".") and c.count(".") == key.count(".") + 1
        )
        return f"; it is a group: give one of {', '.join(members)}"
    close = difflib.get_close_matches(key, pool, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


# ---- consistency of the binding as a whole -------------------------------------------------------------

_HEADER_WIDTH_KEYS = {
    "version": "emsdp.header.version_bits",
    "up_cp": "emsdp.header.up_cp_bits",
    "rfu": "emsdp.header.rfu_bits",
    "key_id": "emsdp.header.key_id_bits",
    "session_id": "emsdp.header.session_id_bits",
}
_CODE_GROUPS = (
    "emsdp.commands",
    "emsdp.tlv.tags",
    "emsdp.reject_causes",
    "emsdp.hse_config.services",
    "emsdp.hse_config.modes",
    "emsdp.ue_config.key_agreement_bits",
)
_KEY_ROOTS = {"ck_ik", "root", "naf_key"}
_PATH_PLACEHOLDERS = {"session_id", "ue_id", "key_id"}


def header_bits(binding: Mapping[str, Any], counter_bits: int) -> int:
    """Total width of the EMSDP header fields for a given counter width."""
    fields = binding["emsdp.header.fields"]
    return sum(counter_bits if f == "counter" else binding[_HEADER_WIDTH_KEYS[f]] for f in fields)


def check_consistency(binding: Binding) -> list[str]:
    """Rules that tie several parameters together; each problem names the keys involved."""
    problems: list[str] = []
    problems += _check_header(binding)
    problems += _check_unique_codes(binding)
    problems += _check_tlv_lists(binding)
    problems += _check_derivations(binding)
    problems += _check_protection(binding)
    if binding["protection.mac.bits"] % 8:
        problems.append(f"protection.mac.bits: must be a whole number of octets, got {binding['protection.mac.bits']}")
    identity = binding["dtls.psk_identity"]
    placeholders = re.findall(r"\{(\w*)\}", identity)
    if sorted(placeholders) != ["key_id", "ue_id"] or "}{" in identity:
        problems.append(
            "dtls.psk_identity: must hold {ue_id} and {key_id} once each, with a separator between them, "
            f"got {identity!r}"
        )
    for name, path in binding.section("rest.paths").items():
        unknown = set(re.findall(r"\{(\w+)\}", path)) - _PATH_PLACEHOLDERS
        if not path.startswith("/") or unknown:
            problems.append(
                f"rest.paths.{name}: must start with '/' and use only "
                f"{{{'}, {'.join(sorted(_PATH_PLACEHOLDERS))}}} placeholders, got {path!r}"
            )
    return problems


def _check_header(binding: Binding) -> list[str]:
    problems = []
    fields = binding["emsdp.header.fields"]
    if len(set(fields)) != len(fields):
        problems.append(f"emsdp.header.fields: a field appears twice in {fields}")
    for needed in ("up_cp", "key_id", "counter"):
        if needed not in fields:
            problems.append(f"emsdp.header.fields: must contain {needed} (TS 33.163 6.2.2), got {fields}")
    if "up_cp" in fields and "counter" in fields and fields.index("up_cp") > fields.index("counter"):
        problems.append(
            "emsdp.header.fields: up_cp must precede counter, or a receiver cannot tell the plane "
            "(and so the counter width) of a message"
        )
    if binding["emsdp.header.version_bits"] and "version" not in fields:
        problems.append("emsdp.header.version_bits is non-zero but emsdp.header.fields has no 'version'")
    cp, up = binding["emsdp.counters.cp_bits_by_scheme"], binding["emsdp.counters.up_bits_by_scheme"]
    if len(cp) != len(up) or not cp:
        problems.append(
            "emsdp.counters.cp_bits_by_scheme and up_bits_by_scheme must list the same, non-zero "
            f"number of schemes, got {len(cp)} and {len(up)}"
        )
    if binding["emsdp.counters.default_scheme"] >= len(cp):
        problems.append(
            f"emsdp.counters.default_scheme: {binding['emsdp.counters.default_scheme']} is not a "
            f"scheme of cp_bits_by_scheme (0..{len(cp) - 1})"
        )
    if not problems:
        for plane, widths in (("cp", cp), ("up", up)):
            for scheme, width in enumerate(widths):
                total = header_bits(binding, width)
                if total % 8:
                    problems.append(
                        f"emsdp.counters.{plane}_bits_by_scheme[{scheme}]: a {width}-bit counter makes "
                        f"the header {total} bits, not a whole number of octets"
                    )
    return problems


def _check_protection(binding: Binding) -> list[str]:
    problems = []
    names = binding.children("keys.derivations")
    for use, key in binding.section("protection.keys").items():
        if key not in names:
            problems.append(f"protection.keys.{use}: {key!r} is not a derivation of keys.derivations")
    layout = binding["protection.count.layout"]
    widest = max(binding["emsdp.counters.cp_bits_by_scheme"] + binding["emsdp.counters.up_bits_by_scheme"])
    widths = {"session_id": binding["emsdp.header.session_id_bits"], "counter": widest, "direction": 1}
    total = sum(widths[f] for f in layout)
    if len(set(layout)) != len(layout) or "counter" not in layout or total > 64:
        problems.append(
            f"protection.count.layout: {layout} must name counter, each field once, and fit 64 bits "
            f"(the IV's upper half); it takes {total} with the widest counter"
        )
    return problems


def _check_unique_codes(binding: Binding) -> list[str]:
    problems = []
    for group in _CODE_GROUPS:
        seen: dict[Any, str] = {}
        for name, code in binding.section(group).items():
            if code in seen:
                problems.append(f"{group}.{name}: value {code:#04x} is also used by {group}.{seen[code]}")
            seen[code] = name
    return problems


def _check_tlv_lists(binding: Binding) -> list[str]:
    tags = binding.section("emsdp.tlv.tags")
    return [
        f"emsdp.tlv_lists.{name}[{i}]: {alt!r} is not a TLV of emsdp.tlv.tags"
        for name, items in binding.section("emsdp.tlv_lists").items()
        for i, item in enumerate(items)
        for alt in item.split("|")
        if alt not in tags
    ]


def _check_derivations(binding: Binding) -> list[str]:
    problems = []
    names = binding.children("keys.derivations")
    for agreement, root in binding.section("keys.root_by_key_agreement").items():
        if root not in names and root != "ck_ik":
            problems.append(f"keys.root_by_key_agreement.{agreement}: {root!r} is neither ck_ik nor a derivation")
    parents = {n: binding[f"keys.derivations.{n}.key"] for n in names}
    for name, parent in parents.items():
        if parent not in names and parent not in _KEY_ROOTS:
            problems.append(
                f"keys.derivations.{name}.key: {parent!r} is neither a derivation nor one of {sorted(_KEY_ROOTS)}"
            )
    recipes: dict[tuple[Any, ...], str] = {}
    for name in names:  # two derivations with one recipe would hand out the same key under two names
        head = f"keys.derivations.{name}"
        recipe = (binding[f"{head}.fc"], parents[name], tuple(binding[f"{head}.params"]))
        if recipe in recipes:
            problems.append(
                f"{head}: same FC, key and params as keys.derivations.{recipes[recipe]}; the two keys would be equal"
            )
        recipes.setdefault(recipe, name)
        if binding[f"{head}.out_bits"] % 8:
            problems.append(f"{head}.out_bits: must be a whole number of octets, got {binding[f'{head}.out_bits']}")
    for name in names:  # a chain of parents must end at a root
        seen, node = [name], parents[name]
        while node in parents:
            if node in seen:
                problems.append(f"keys.derivations.{name}.key: derivation cycle {' -> '.join([*seen, node])}")
                break
            seen.append(node)
            node = parents[node]
    return problems
