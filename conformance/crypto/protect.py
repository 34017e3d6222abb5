"""Integrity and confidentiality of EMSDP messages, as the binding says (digest 5.4: not retrieved, modelled
on 128-EIA2 / 128-EEA2).

COUNT packs the binding's `protection.count.layout` fields (session ID, counter, direction) MSB first into 64
bits, right-aligned (`protection.count.align` lsb) or left-aligned (msb). MAC = the first (`protection.mac.take`
msb) or last (lsb) `protection.mac.bits` of AES-CMAC or HMAC-SHA-256 over COUNT ‖ covered octets; the
cipher is AES-CTR with IV = COUNT ‖ 64 zero bits, so the blocks of one message never reach another's IV.
Both sides of the harness (UE role, reference HSE) use this one module, so they cannot disagree on it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

UPLINK, DOWNLINK = "uplink", "downlink"


# Key schedules made once per key, not per message: a session's keys protect every message of it. Bounded, so a
# long load run with many sessions keeps the newest.
@functools.lru_cache(maxsize=4096)
def _aes(key: bytes) -> algorithms.AES:
    return algorithms.AES(key)


@functools.lru_cache(maxsize=4096)
def _keyed_cmac(key: bytes) -> cmac.CMAC:
    """An AES-CMAC context keyed and not yet fed: each MAC works on a copy."""
    return cmac.CMAC(_aes(key))


def mac_primitive(algorithm: str, key: bytes, data: bytes) -> bytes:
    """The untruncated MAC: AES-CMAC (as in 128-EIA2) or HMAC-SHA-256."""
    if algorithm == "aes-cmac":
        c = _keyed_cmac(bytes(key)).copy()
        c.update(data)
        return c.finalize()
    if algorithm == "hmac-sha256":
        return hmac.digest(key, data, hashlib.sha256)
    raise ValueError(f"unknown MAC algorithm {algorithm!r}")


@dataclass(frozen=True)
class Protection:
    mac_algorithm: str
    mac_bytes: int
    covers: str  # header_and_body | body
    cipher: str  # aes-ctr | none
    count_layout: tuple[str, ...]
    session_id_bits: int
    uplink_direction: int
    count_align: str = "lsb"  # lsb: the packed fields in COUNT's low-order bits | msb: in its high-order bits
    mac_take: str = "msb"  # msb: the primitive's first mac_bytes octets | lsb: its last ones

    @classmethod
    def from_binding(cls, binding: Mapping[str, Any]) -> Protection:
        return cls(
            mac_algorithm=binding["protection.mac.algorithm"],
            mac_bytes=binding["protection.mac.bits"] // 8,
            covers=binding["protection.mac.covers"],
            cipher=binding["protection.cipher.algorithm"],
            count_layout=tuple(binding["protection.count.layout"]),
            session_id_bits=binding["emsdp.header.session_id_bits"],
            uplink_direction=binding["protection.count.direction_uplink"],
            count_align=binding["protection.count.align"],
            mac_take=binding["protection.mac.take"],
        )

    def count(self, session_id: int, counter: int, counter_bits: int, direction: str) -> bytes:
        """COUNT: the layout's fields packed MSB first, right-aligned in 8 octets (align lsb) or left-aligned, the
        low-order bits left over zero (align msb)."""
        bit = self.uplink_direction if direction == UPLINK else 1 - self.uplink_direction
        fields = {
            "session_id": (session_id, self.session_id_bits),
            "counter": (counter, counter_bits),
            "direction": (bit, 1),
        }
        value, total = 0, 0
        for name in self.count_layout:
            field, width = fields[name]
            value = value << width | (field & ((1 << width) - 1))
            total += width
        if self.count_align == "msb":
            value <<= 64 - total
        return value.to_bytes(8, "big")

    def mac(self, key: bytes, count: bytes, header: bytes, body: bytes) -> bytes:
        covered = header + body if self.covers == "header_and_body" else body
        full = mac_primitive(self.mac_algorithm, key, count + covered)
        return full[: self.mac_bytes] if self.mac_take == "msb" else full[len(full) - self.mac_bytes :]

    def verify(self, key: bytes, count: bytes, header: bytes, body: bytes, mac: bytes) -> bool:
        return hmac.compare_digest(self.mac(key, count, header, body), mac)

    def crypt(self, key: bytes, count: bytes, data: bytes) -> bytes:
        """Encrypt or decrypt (CTR is its own inverse); 'none' leaves the data as it is."""
        if self.cipher == "none":
            return data
        return Cipher(_aes(bytes(key)), modes.CTR(count + bytes(8))).encryptor().update(data)
