"""The reference HSE's subscriber store: credentials from the profile, identities, fresh authentication vectors.

Subscribers of `pixit.subscriber_ranges` are made on first use (conformance.subscriber_ranges), so a range of a
million costs nothing until a load test draws from it; listed subscribers come first.

SQN management follows TS 33.102 C.3's simplest profile: one IND slot, SEQ + 1 for every vector, and a
resynchronisation (AUTS) moves SEQ just past the USIM's SQN_MS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from conformance.crypto.aka import AuthError, AuthVector, generate_vector, resynchronise, sqn_bytes
from conformance.crypto.milenage import Milenage
from conformance.crypto.suci import SuciError, suci_imsi
from conformance.profile import LoadedProfile, Subscriber
from conformance.subscriber_ranges import find


class UnknownSubscriber(LookupError):
    pass


@dataclass
class SubscriberState:
    """One subscriber as the home network sees it: credentials and the HE's SQN."""

    config: Subscriber
    milenage: Milenage
    sqn: int
    ind_bits: int
    stale_sqn: bool = False  # fault: reuse the current SQN for every vector
    static_rand: bool = False  # fault: the same RAND in every vector (the subscriber's first)
    vectors_issued: int = field(default=0)
    first_rand: bytes = b""
    first_key_id: bytes = b""  # fault key_id_reused: the key identifier of the subscriber's first key agreement

    @property
    def imsi(self) -> str:
        return self.config.imsi

    def next_vector(self) -> AuthVector:
        """A fresh vector: a random RAND and SEQ + 1 (in the IND slot 0), unless the static_rand or stale_sqn
        fault is on."""
        if not self.stale_sqn or not self.vectors_issued:
            self.sqn += 1 << self.ind_bits
        self.vectors_issued += 1
        rand = os.urandom(16)
        if self.static_rand:
            rand = self.first_rand = self.first_rand or rand
        return generate_vector(self.milenage, rand, sqn_bytes(self.sqn), self.config.amf)

    def resynchronise(self, rand: bytes, auts: bytes, resync_amf: bytes) -> None:
        """Verify AUTS and continue from the USIM's SQN_MS. Raises AuthError if MAC-S does not verify."""
        sqn_ms = int.from_bytes(resynchronise(self.milenage, rand, auts, resync_amf), "big")
        self.sqn = max(self.sqn, sqn_ms)


class SubscriberDb:
    def __init__(self, profile: LoadedProfile, *, stale_sqn: bool = False, static_rand: bool = False):
        self._ind_bits = profile.binding["aka.sqn.ind_bits"]
        self._faults = stale_sqn, static_rand
        self._ranges = profile.pixit.subscriber_ranges
        self._by_imsi: dict[str, SubscriberState] = {}
        for sub in profile.pixit.subscribers:
            self._add(sub)
        self._hn_keys = {(k.id, k.profile): k.private_key for k in profile.pixit.home_network_keys if k.private_key}
        self._suci_format = profile.binding["suci.format"]

    def _add(self, sub: Subscriber) -> SubscriberState:
        milenage = Milenage(sub.k, sub.opc) if sub.opc else Milenage.from_op(sub.k, sub.op)
        state = SubscriberState(sub, milenage, int.from_bytes(sub.sqn, "big"), self._ind_bits, *self._faults)
        self._by_imsi[sub.imsi] = state
        return state

    def by_imsi(self, imsi: str) -> SubscriberState:
        state = self._by_imsi.get(imsi)
        if state is not None:
            return state
        ranged = find(self._ranges, imsi)
        if ranged is None:
            raise UnknownSubscriber(f"no subscriber with IMSI {imsi}")
        return self._add(ranged)  # its SQN starts from the range's on first use

    def first(self) -> SubscriberState:
        """The first subscriber of the profile (what the answers_unknown_subscriber fault serves any stranger as)."""
        return next(iter(self._by_imsi.values()))

    def by_suci(self, value: bytes) -> SubscriberState:
        """De-conceal a SUCI TLV value with the home network private key it names (TS 33.501 C.3)."""
        try:
            imsi = suci_imsi(value, self._suci_format, self._hn_keys)
        except SuciError as exc:
            raise UnknownSubscriber(f"SUCI not usable: {exc}") from None
        return self.by_imsi(imsi)


__all__ = ["AuthError", "SubscriberDb", "SubscriberState", "UnknownSubscriber"]
