"""The small type language of binding parameters.

A binding file declares the type of each parameter as a string (``uint8``, ``int[3..64]``, ``enum[a|b]``,
``list[str]`` ...). Overrides come from people's YAML files, so every check answers with a sentence that
says what was expected, never with a Python exception.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Problem = str | None  # None: the value is fine; otherwise what is wrong with it

_ALIASES = {
    "uint8": "int[0..255]",
    "uint16": "int[0..65535]",
    "uint32": "int[0..4294967295]",
    "port": "int[1..65535]",
}
_KDF_PARAM = re.compile(r"hex:(?:[0-9a-fA-F]{2})*|utf8:.+|[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class ParamType:
    """A parsed type: `check` returns a problem description or None."""

    spec: str
    describe: str
    check: Callable[[Any, str], list[str]]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def parse_type(spec: str) -> ParamType:
    """Parse a type string; a malformed one is a bug in the binding file, so it raises ValueError."""
    spec = spec.strip()
    resolved = _ALIASES.get(spec, spec)

    if m := re.fullmatch(r"int\[(-?\d+)\.\.(-?\d+)\]", resolved):
        low, high = int(m[1]), int(m[2])
        describe = f"an integer {low}..{high}" if spec == resolved else f"{spec} (an integer {low}..{high})"

        def check_int(value: Any, where: str) -> list[str]:
            if not _is_int(value) or not low <= value <= high:
                return [f"{where}: expected {describe}, got {_show(value)}"]
            return []

        return ParamType(spec, describe, check_int)

    if resolved == "bool":
        return ParamType(spec, "true or false", _simple(lambda v: isinstance(v, bool), "true or false"))

    if resolved == "str":
        return ParamType(
            spec, "a non-empty string", _simple(lambda v: isinstance(v, str) and v != "", "a non-empty string")
        )

    if m := re.fullmatch(r"enum\[(.+)\]", resolved):
        members = tuple(x.strip() for x in m[1].split("|"))
        describe = "one of " + ", ".join(members)
        return ParamType(spec, describe, _simple(lambda v: isinstance(v, str) and v in members, describe))

    if m := re.fullmatch(r"hex(?:\[(\d+)\])?", resolved):
        octets = int(m[1]) if m[1] else None
        describe = f"{octets} octets as hex" if octets else "octets as hex"

        def ok_hex(v: Any) -> bool:
            return (
                isinstance(v, str)
                and re.fullmatch(r"(?:[0-9a-fA-F]{2})*", v) is not None
                and (octets is None or len(v) == 2 * octets)
            )

        return ParamType(spec, describe, _simple(ok_hex, describe))

    if resolved == "kdf_param":
        describe = "a KDF input: an input name, hex:<octets> or utf8:<text>"
        return ParamType(
            spec, describe, _simple(lambda v: isinstance(v, str) and _KDF_PARAM.fullmatch(v) is not None, describe)
        )

    if m := re.fullmatch(r"list\[(.+)\]", resolved):
        item = parse_type(m[1])
        describe = f"a list of {item.describe}"

        def check_list(value: Any, where: str) -> list[str]:
            if not isinstance(value, list):
                return [f"{where}: expected {describe}, got {_show(value)}"]
            return [p for i, v in enumerate(value) for p in item.check(v, f"{where}[{i}]")]

        return ParamType(spec, describe, check_list)

    raise ValueError(f"unknown parameter type {spec!r}")


def _simple(ok: Callable[[Any], bool], describe: str) -> Callable[[Any, str], list[str]]:
    def check(value: Any, where: str) -> list[str]:
        return [] if ok(value) else [f"{where}: expected {describe}, got {_show(value)}"]

    return check
