"""AKA on both sides: the home environment builds vectors and resynchronises, the USIM verifies AUTN.

The SQN scheme (SQN = SEQ ‖ IND, one SEQ_MS per IND, a wrap-around limit Δ and an age limit L) follows
TS 33.102 Annex C; its sizes come from the binding (`aka.*`), so this module takes them as arguments.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conformance.crypto.milenage import Milenage

SQN_BITS = 48  # SQN, AK and SQN ⊕ AK are 6 octets (TS 33.102 6.3.2, digest 8.1)


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def sqn_bytes(sqn: int) -> bytes:
    return sqn.to_bytes(6, "big")


def make_autn(sqn: bytes, ak: bytes, amf: bytes, mac_a: bytes) -> bytes:
    """AUTN = (SQN ⊕ AK) ‖ AMF ‖ MAC-A (digest 8.1). Pass AK = 6 zero octets when AK is not used."""
    return _xor(sqn, ak) + amf + mac_a


@dataclass(frozen=True)
class AuthVector:
    """What the home environment hands out for one AKA run."""

    rand: bytes
    xres: bytes
    ck: bytes
    ik: bytes
    ak: bytes
    autn: bytes
    sqn: bytes
    amf: bytes

    @property
    def sqn_xor_ak(self) -> bytes:
        return self.autn[:6]


def generate_vector(milenage: Milenage, rand: bytes, sqn: bytes, amf: bytes) -> AuthVector:
    """Home-environment side: a fresh authentication vector for RAND, SQN and AMF."""
    mac_a, _ = milenage.f1_f1star(rand, sqn, amf)
    res, ck, ik, ak = milenage.f2345(rand)
    return AuthVector(rand, res, ck, ik, ak, make_autn(sqn, ak, amf, mac_a), sqn, amf)


class AuthError(ValueError):
    """An AUTS (or other AKA input) that does not verify."""


def resynchronise(milenage: Milenage, rand: bytes, auts: bytes, resync_amf: bytes) -> bytes:
    """Home-environment side of re-synchronisation: verify MAC-S in AUTS and return SQN_MS.

    AUTS = (SQN_MS ⊕ AK*) ‖ MAC-S, MAC-S = f1*(K, SQN_MS, RAND, AMF*) with the binding's dummy AMF*.
    """
    if len(auts) != 14:
        raise AuthError(f"AUTS must be 14 octets, got {len(auts)}")
    sqn_ms = _xor(auts[:6], milenage.f5star(rand))
    _, mac_s = milenage.f1_f1star(rand, sqn_ms, resync_amf)
    if mac_s != auts[6:]:
        raise AuthError("MAC-S in AUTS does not verify: not from this subscriber's USIM, or corrupted")
    return sqn_ms


@dataclass(frozen=True)
class SqnPolicy:
    """The USIM's freshness rules (TS 33.102 C.2): IND width, wrap-around limit Δ, age limit L (0 = off)."""

    ind_bits: int
    delta: int
    age_limit: int

    def split(self, sqn: int) -> tuple[int, int]:
        """(SEQ, IND) of an SQN."""
        return sqn >> self.ind_bits, sqn & ((1 << self.ind_bits) - 1)


@dataclass
class SqnState:
    """SEQ_MS per IND: the highest SEQ the USIM has accepted in each array slot."""

    policy: SqnPolicy
    seq_ms: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.seq_ms:
            self.seq_ms = [0] * (1 << self.policy.ind_bits)

    @property
    def highest(self) -> int:
        """SQN_MS: the highest accepted SQN, as sent back in AUTS."""
        ind = max(range(len(self.seq_ms)), key=lambda i: self.seq_ms[i])
        return (self.seq_ms[ind] << self.policy.ind_bits) | ind

    def check(self, sqn: int) -> str | None:
        """None if SQN is fresh, else why it is not."""
        seq, ind = self.policy.split(sqn)
        seq_max = max(self.seq_ms)
        if seq <= self.seq_ms[ind]:
            return f"SEQ {seq} is not above SEQ_MS[{ind}] = {self.seq_ms[ind]} (replayed or reused SQN)"
        if seq - seq_max > self.policy.delta:
            return f"SEQ {seq} is more than Δ = {self.policy.delta} above the highest SEQ_MS {seq_max}"
        if self.policy.age_limit and seq_max - seq >= self.policy.age_limit:
            return f"SEQ {seq} is L = {self.policy.age_limit} or more below the highest SEQ_MS {seq_max}"
        return None

    def accept(self, sqn: int) -> None:
        seq, ind = self.policy.split(sqn)
        self.seq_ms[ind] = seq


class AutnOutcome(enum.Enum):
    OK = "ok"
    MAC_FAILURE = "mac_failure"  # the network is not authentic: the UE answers with a reject
    SYNCH_FAILURE = "synch_failure"  # MAC good, SQN not fresh: the UE answers with AUTS
    AMF_SEPARATION = "amf_separation"  # MAC and SQN good, but the AMF separation bit is not set


@dataclass(frozen=True)
class AutnCheck:
    outcome: AutnOutcome
    reason: str = ""
    sqn: bytes = b""
    res: bytes = b""
    ck: bytes = b""
    ik: bytes = b""
    ak: bytes = b""
    auts: bytes = b""


class Usim:
    """A USIM emulation: verifies AUTN and keeps the SQN array, as the UE role needs."""

    def __init__(self, milenage: Milenage, policy: SqnPolicy, resync_amf: bytes, sqn_ms: int = 0):
        self.milenage = milenage
        self.resync_amf = resync_amf
        self.state = SqnState(policy)
        if sqn_ms:
            self.state.accept(sqn_ms)

    @classmethod
    def from_binding(cls, milenage: Milenage, binding: Mapping[str, Any], sqn_ms: int = 0) -> Usim:
        """A USIM with the binding's SQN scheme (aka.sqn.*) and resynchronisation AMF (aka.resync_amf)."""
        policy = SqnPolicy(binding["aka.sqn.ind_bits"], binding["aka.sqn.delta"], binding["aka.sqn.age_limit"])
        return cls(milenage, policy, bytes.fromhex(binding["aka.resync_amf"]), sqn_ms)

    def authenticate(self, rand: bytes, autn: bytes, *, require_separation_bit: bool) -> AutnCheck:
        """Check MAC-A, then SQN freshness, then the AMF separation bit (bit 0 of AMF), in the order a USIM
        and its ME do; only an OK outcome yields RES, CK and IK and advances the SQN array."""
        if len(autn) != 16:
            return AutnCheck(AutnOutcome.MAC_FAILURE, f"AUTN must be 16 octets, got {len(autn)}")
        res, ck, ik, ak = self.milenage.f2345(rand)
        sqn, amf, mac_a = _xor(autn[:6], ak), autn[6:8], autn[8:]
        xmac, _ = self.milenage.f1_f1star(rand, sqn, amf)
        if xmac != mac_a:
            return AutnCheck(AutnOutcome.MAC_FAILURE, f"XMAC {xmac.hex()} differs from MAC-A {mac_a.hex()}", sqn)
        stale = self.state.check(int.from_bytes(sqn, "big"))
        if stale:
            return AutnCheck(AutnOutcome.SYNCH_FAILURE, stale, sqn, auts=self.auts(rand))
        self.state.accept(int.from_bytes(sqn, "big"))
        if require_separation_bit and not amf[0] & 0x80:
            return AutnCheck(AutnOutcome.AMF_SEPARATION, f"AMF {amf.hex()} has separation bit 0", sqn)
        return AutnCheck(AutnOutcome.OK, "", sqn, res, ck, ik, ak)

    def auts(self, rand: bytes) -> bytes:
        """AUTS = (SQN_MS ⊕ AK*) ‖ f1*(K, SQN_MS, RAND, AMF*)."""
        sqn_ms = sqn_bytes(self.state.highest)
        _, mac_s = self.milenage.f1_f1star(rand, sqn_ms, self.resync_amf)
        return _xor(sqn_ms, self.milenage.f5star(rand)) + mac_s
