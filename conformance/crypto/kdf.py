"""The generic key derivation function of TS 33.220 Annex B.2, used by every BEST and e2m key."""

from __future__ import annotations

import hashlib
import hmac


def kdf_input(fc: int, *params: bytes) -> bytes:
    """S = FC ‖ P0 ‖ L0 ‖ … ‖ Pn ‖ Ln, each Li the length of Pi as two octets, big-endian (TS 33.220 B.2.0)."""
    if not 0 <= fc <= 0xFF:
        raise ValueError(f"FC must be one octet, got {fc:#x}")
    out = bytearray([fc])
    for i, p in enumerate(params):
        if len(p) > 0xFFFF:
            raise ValueError(f"KDF parameter P{i} is {len(p)} octets; at most 65535 fit its 2-octet length")
        out += p + len(p).to_bytes(2, "big")
    return bytes(out)


def kdf(key: bytes, fc: int, *params: bytes) -> bytes:
    """Derived key = HMAC-SHA-256(Key, S): 256 bits (TS 33.220 B.2.0)."""
    return hmac.digest(key, kdf_input(fc, *params), hashlib.sha256)


def truncate(output: bytes, bits: int, take: str) -> bytes:
    """Keep `bits` of a KDF output: 'lsb' keeps the least significant bits (the 3GPP convention for algorithm
    keys), 'msb' the most significant ones. `bits` must be a whole number of octets."""
    if bits % 8 or not 0 < bits <= len(output) * 8:
        raise ValueError(f"cannot keep {bits} bits of a {len(output) * 8}-bit output")
    n = bits // 8
    if take == "lsb":
        return output[len(output) - n :]
    if take == "msb":
        return output[:n]
    raise ValueError(f"take must be 'lsb' or 'msb', got {take!r}")
