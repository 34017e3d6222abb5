"""Secrets in outputs: the one place that decides what is a secret and how it is masked.

A secret is a value of at least 8 octets (bytes, or text of at least 16 hex digits) that
  (a) the case's secret book holds: the profile's K, OP, OPc, private keys and PSKs, and every key the harness
      derived during the case (the UE's session keys, keys saved for later steps), or
  (b) sits under a field named like a key (`k`, `opc`, `kint_eas_psk`, `e2m_key`, `private_key`, ...), or
  (c) appears in the expected/observed values of a failed check on a key: what a SUT hands out as a key is
      key material whether it is right or wrong.
RAND, AUTN, RES, AUTS, MACs and key identifiers are not secrets and stay readable.

A masked value keeps what a certifier needs to compare: `•••• (sha256 3f2a9c1b…, 16 octets)`, the first 32
bits of the SHA-256 of the octets and their number. The same key masks to the same text everywhere (as hex,
as bytes, or as a Python bytes repr inside a message), so two masked values can still be told equal or not.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from collections.abc import Iterable, Iterator
from typing import Any

MIN_OCTETS = 8
_HEX_RUN = re.compile(r"(?<![0-9A-Za-z])[0-9A-Fa-f]{16,}(?![0-9A-Za-z])")
_NAMES = {"k", "op", "opc", "ck", "ik", "ak", "ck_ik", "psk", "private_key", "secret", "master_secret", "key"}
_NAME_PATTERN = re.compile(r"(^|_)(key|keys|psk|secret|secrets)$|^k(asme|hse|int|ausf|seaf|e2m|enc)")
_NOT_SECRET = re.compile(r"public|_id$|_ids$|^key_?id|fingerprint|sha256")
# a check is on a key when its expectation names one; "key id(entifier)" and "key server" are not keys
_KEY_CHECK = re.compile(r"(?i)\bkeys?\b(?!\s*(id|identifier|server)\b)|psk|e2m_key|e2e_key|khse|kint|kasme")


def mask_text(value: bytes) -> str:
    """What a secret is replaced with: comparable (hash prefix, length), not revealing."""
    return f"•••• (sha256 {hashlib.sha256(value).hexdigest()[:8]}…, {len(value)} octets)"


def secret_name(name: Any) -> bool:
    """A field name that holds a key: k, opc, ck, kint_eas_psk, e2m_key, old_key, next_keys, private_key, ...
    (the last segment of a dotted name counts: `key_client.keys`). Key ids, public keys and digests are not."""
    if not isinstance(name, str):
        return False
    last = name.lower().rsplit(".", 1)[-1]
    if _NOT_SECRET.search(last):
        return False
    return last in _NAMES or bool(_NAME_PATTERN.search(last)) or last in _derived_key_names()


@functools.cache
def _derived_key_names() -> frozenset[str]:
    """Every key of the default binding's hierarchy (kasme, khse, kint_enc, ..., e2m_key), by its name."""
    from conformance.binding import load_binding

    return frozenset(k.split(".")[0] for k in load_binding().section("keys.derivations"))


def _octets(value: Any) -> bytes | None:
    """The octets of a value that could be a secret (bytes, or hex text), else None."""
    if isinstance(value, bytes | bytearray):
        return bytes(value) if len(value) >= MIN_OCTETS else None
    if isinstance(value, str):
        text = value.strip().removeprefix("0x")
        if len(text) >= 2 * MIN_OCTETS and len(text) % 2 == 0 and _HEX_RUN.fullmatch(text):
            return bytes.fromhex(text)
    return None


def leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from leaves(item)
    else:
        yield value


class Secrets:
    """The secret values to scrub from outputs, and the scrubbing."""

    def __init__(self, values: Iterable[bytes] = ()):
        self.values: set[bytes] = set()
        self._longest_first: list[str] | None = None  # the lowered text forms of the secrets, longest first
        self._forms: dict[str, bytes] = {}
        self.update(values)

    def add(self, value: Any) -> None:
        octets = _octets(value)
        if octets is not None and octets not in self.values:
            self.values.add(octets)
            self._longest_first = None

    def update(self, values: Iterable[Any]) -> None:
        for value in values:
            self.add(value)

    def add_named(self, data: Any) -> None:
        """Every value found under a field named like a key, at any depth."""
        if isinstance(data, dict):
            for name, value in data.items():
                if secret_name(name):
                    self.update(leaves(value))
                else:
                    self.add_named(value)
        elif isinstance(data, list | tuple):
            for item in data:
                self.add_named(item)

    def scrub(self, value: Any) -> Any:
        """A copy of value with every secret masked (dicts, lists, tuples, text, bytes); others as they are."""
        if isinstance(value, dict):
            return {k: self._scrub_field(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        if isinstance(value, bytes | bytearray):
            octets = bytes(value)
            if octets in self.values:
                return mask_text(octets)
            return value
        if isinstance(value, str):
            return self._scrub_text(value)
        return value

    def _scrub_field(self, name: Any, value: Any) -> Any:
        if secret_name(name):
            octets = _octets(value)
            if octets is not None:
                return mask_text(octets)
        return self.scrub(value)

    def _scrub_text(self, text: str) -> str:
        if not self.values:
            return text
        if self._longest_first is None:  # longest first: a secret inside a longer one is masked as the longer
            self._forms = {form.lower(): value for value in self.values for form in (value.hex(), repr(value))}
            self._longest_first = sorted(self._forms, key=len, reverse=True)
        lowered = text.lower()
        present = [form for form in self._longest_first if form in lowered]  # mostly none: no expression to compile
        if not present:
            return text
        pattern = re.compile("|".join(re.escape(f) for f in present), re.IGNORECASE)
        return pattern.sub(lambda m: mask_text(self._forms[m.group(0).lower()]), text)


def profile_secrets(profile: Any) -> Secrets:
    """K, OP, OPc, private keys and PSKs of a SUT profile: every value under a key-like field name."""
    inner = getattr(profile, "profile", profile)
    book = Secrets()
    try:
        book.add_named(inner.model_dump())
    except AttributeError:
        book.add_named(inner)
    return book


def check_secrets(expectation: str, expected: Any, observed: Any) -> set[bytes]:
    """Key material in a failed check on a key: every value of 8+ octets, and every long hex run in text
    (an HTTP body quoted in `observed` holds the key as hex)."""
    if not _KEY_CHECK.search(expectation or ""):
        return set()
    found: set[bytes] = set()
    for leaf in leaves([expected, observed]):
        octets = _octets(leaf)
        if octets is not None:
            found.add(octets)
        elif isinstance(leaf, str):
            found.update(bytes.fromhex(run) for run in _HEX_RUN.findall(leaf) if len(run) % 2 == 0)
    return found


_PROVISIONED: dict[tuple[Any, ...], tuple[Any, frozenset[bytes]]] = {}


def provisioned_secrets(profile: Any, identities: frozenset[str]) -> frozenset[bytes]:
    """The keys of every AKA run the profile provisions (a subscriber's `rands`, as an EMKS holds them): CK, IK
    and each key of the binding's hierarchy, once per client identity (EMSE_Id / EAS_Id). Steps derive these
    without keeping them (provisioned keys, DTLS PSKs), and a key server's log in a trace carries them."""
    from conformance.crypto.keys import KeyHierarchy
    from conformance.crypto.milenage import Milenage

    binding = profile.binding
    subscribers = [s for s in profile.pixit.subscribers if s.rands]
    cache_key = (id(binding), tuple((s.k, s.opc, s.op, tuple(s.rands)) for s in subscribers), identities)
    cached = _PROVISIONED.get(cache_key)
    if cached is not None and cached[0] is binding:
        return cached[1]
    found: set[bytes] = set()
    try:
        hierarchy = KeyHierarchy.from_binding(binding)
        agreement = hierarchy.provisioning_agreement
        for subscriber in subscribers:
            milenage = (
                Milenage(subscriber.k, subscriber.opc)
                if subscriber.opc
                else Milenage.from_op(subscriber.k, subscriber.op)
            )
            for rand in subscriber.rands:
                _res, ck, ik, _ak = milenage.f2345(rand)
                found |= {ck, ik}
                for identity in identities or {""}:
                    inputs = {"emse_id": identity.encode(), "eas_id": identity.encode()}
                    derived, _ = hierarchy.derive_all(ck=ck, ik=ik, key_agreement=agreement, inputs=inputs)
                    found |= {d.value for d in derived.values()}
    except (KeyError, ValueError, StopIteration):  # a binding the hierarchy cannot use: the cases report that
        pass
    _PROVISIONED[cache_key] = (binding, frozenset(found))
    return frozenset(found)


def mask_result(result: Any, extra: Secrets | None = None) -> Any:
    """A copy of a Result with its secrets masked in reason, expected, observed and trace; the secrets it
    names are the runner's (`result.secrets`), `extra`'s (the run's profile) and those under key-like names."""
    book = Secrets(getattr(result, "secrets", ()) or ())
    if extra is not None:
        book.update(extra.values)
    book.add_named([result.expected, result.observed, result.trace])
    return dataclasses.replace(
        result,
        reason=book.scrub(result.reason),
        expected=book.scrub(result.expected),
        observed=book.scrub(result.observed),
        trace=book.scrub(result.trace),
    )
