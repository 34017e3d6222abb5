"""Subscribers of `pixit.subscriber_ranges`, computed on demand: a range of a million IMSIs costs nothing to load,
and the reference SUTs, the harness and a load test all derive the same K and OPc for an IMSI.

The one rule (`hmac-sha256`, profile.RANGE_RULES): K = the first 16 octets of HMAC-SHA-256(secret, "K" || IMSI),
OPc = the first 16 octets of HMAC-SHA-256(secret, "OPc" || IMSI), the label and the IMSI's digits as ASCII. Plain
HMAC rather than the TS 33.220 KDF: its FC values are 3GPP-assigned and none is for lab provisioning, and a lab can
provision its SUT with any HMAC tool, e.g.
`printf K001010100000000 | openssl dgst -sha256 -mac HMAC -macopt hexkey:SECRET` (first 32 hex digits).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from conformance.profile import Subscriber, SubscriberRange


def derived_credentials(rng: SubscriberRange, imsi: str) -> tuple[bytes, bytes]:
    """(K, OPc) of one IMSI by the range's rule."""

    def label(name: bytes) -> bytes:
        return hmac.digest(rng.secret, name + imsi.encode("ascii"), hashlib.sha256)[:16]

    return label(b"K"), label(b"OPc")


def range_size(rng: SubscriberRange) -> int:
    return rng.count


def imsi_at(rng: SubscriberRange, index: int) -> str:
    """The IMSI of subscriber `index` (0 is first_imsi). Raises IndexError outside the range."""
    if not 0 <= index < rng.count:
        raise IndexError(f"subscriber {index} of a range of {rng.count}")
    return str(int(rng.first_imsi) + index).zfill(len(rng.first_imsi))


def subscriber_at(rng: SubscriberRange, index: int) -> Subscriber:
    """Subscriber `index` of the range, as a PIXIT subscriber (its own K and OPc, the range's shared fields)."""
    imsi = imsi_at(rng, index)
    k, opc = derived_credentials(rng, imsi)
    shared = rng.model_dump(include={"sqn", "amf", "key_agreements", "services", "modes", "eas_ids", "rands"})
    return Subscriber(imsi=imsi, k=k, opc=opc, **shared)


def find(ranges: Iterable[SubscriberRange], imsi: str) -> Subscriber | None:
    """The ranged subscriber with this IMSI, or None."""
    for rng in ranges:
        if rng.holds(imsi):
            return subscriber_at(rng, int(imsi) - int(rng.first_imsi))
    return None


def total(ranges: Iterable[SubscriberRange]) -> int:
    return sum(range_size(rng) for rng in ranges)


def nth(ranges: list[SubscriberRange], index: int) -> Subscriber:
    """Subscriber `index` counting through the ranges in order: how load users draw distinct subscribers."""
    for rng in ranges:
        if index < rng.count:
            return subscriber_at(rng, index)
        index -= rng.count
    raise IndexError("past the last ranged subscriber")
