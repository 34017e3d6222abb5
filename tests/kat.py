"""Known-answer checks that prove their own sensitivity.

A known-answer test that passes is only evidence if it would fail on a wrong value. `check_known_answer`
therefore asserts the published answer, then flips one bit in each input in turn (first bit of the first
octet, last bit of the last octet) and asserts that the answer no longer matches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def load_fixture(name: str) -> dict[str, Any]:
    """Read fixtures/<name> (YAML); every fixture file names its source."""
    data = yaml.safe_load((FIXTURES / name).read_text(encoding="utf-8"))
    assert data.get("source"), f"fixture {name} must cite its source"
    return data


def h(value: str) -> bytes:
    """Hex in fixtures may be grouped with spaces for readability."""
    return bytes.fromhex(value.replace(" ", ""))


def flip_bit(value: bytes, bit: int) -> bytes:
    """Return value with bit `bit` flipped; bit 0 is the most significant bit of the first octet."""
    out = bytearray(value)
    out[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(out)


def one_bit_variants(value: bytes) -> list[bytes]:
    """Two single-bit corruptions of a value: its first and its last bit."""
    if not value:
        return []
    return [flip_bit(value, 0), flip_bit(value, len(value) * 8 - 1)]


def check_known_answer(
    fn: Callable[..., Any],
    inputs: Mapping[str, bytes],
    expected: Any,
    *,
    sensitive: tuple[str, ...] | None = None,
) -> None:
    """Assert fn(**inputs) == expected, and that a one-bit change of each sensitive input breaks it.

    `sensitive` names the inputs the output must depend on (default: all of them).
    """
    assert fn(**inputs) == expected
    for name in sensitive if sensitive is not None else tuple(inputs):
        for variant in one_bit_variants(inputs[name]):
            changed = {**inputs, name: variant}
            assert fn(**changed) != expected, f"output does not depend on bit-flipped input {name!r}"
