"""Where a key server finds the key it hands to a registered client.

The REST model is the same for the EMKS (TR 33.863 Sol. #10) and for the HSE's EAS-facing side (TS 33.163
Annex B); only the keys differ. The app therefore asks a `KeyStore` two questions and nothing else: the key a
client may have for a UE and key identifier, and the newest one (for push). `EmksStore` answers them from
e2m_int_keys; the HSE will plug a store of KInt_EAS_PSK per UE and EAS.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from conformance.crypto.keys import KeyHierarchy, derive, key_identifier
from conformance.crypto.milenage import Milenage, compute_opc


class KeyStore(Protocol):
    """What the key-server app asks. `client_id` is the registered identity (EMSE_Id or EAS_Id); both
    methods are called from the server's event loop and must not block on I/O."""

    def lookup(self, client_id: str, ue_id: str, key_id: bytes) -> bytes | None:
        """The key `client_id` may have for this UE and key identifier, or None if the store has none."""
        ...

    def latest(self, client_id: str, ue_id: str) -> tuple[bytes, bytes] | None:
        """(key identifier, key) of the newest key `client_id` may have for this UE, or None."""
        ...


class EmksStore:
    """An EMKS: per UE the last `rest.past_keys_kept` e2m_int_keys with their key identifiers (seed 002
    6.x.2.1: a fixed small number of past keys, so a UE one AKA run behind still gets its key).

    e2m_key = KDF(e2m_int_key, EMSE_Id) is derived on each lookup for the requesting EMSE, so one provisioned
    key serves every EMSE. Fault `past_keys_not_kept` keeps only the newest key. Thread-safe: tests and
    profiles provision from another thread than the server's.
    """

    def __init__(self, binding: Mapping[str, Any], *, faults: Iterable[str] = ()):
        specs = KeyHierarchy.from_binding(binding).specs
        self._int_spec, self._key_spec = specs["e2m_int_key"], specs["e2m_key"]
        if self._int_spec.key != "ck_ik" or self._key_spec.key != "e2m_int_key":
            raise ValueError(
                "keys.derivations.e2m_int_key.key must be ck_ik and keys.derivations.e2m_key.key e2m_int_key "
                f"for an EMKS, got {self._int_spec.key} and {self._key_spec.key}"
            )
        self._id_scheme = binding["keys.key_identifier.scheme"]
        if self._id_scheme == "key_hash" and binding["keys.key_identifier.hash_of"] != "e2m_int_key":
            raise ValueError(
                "keys.key_identifier.hash_of: an EMKS can only hash e2m_int_key, "
                f"got {binding['keys.key_identifier.hash_of']}"
            )
        self._id_bits = binding["keys.key_identifier.bits"]
        self._id_hash = binding["keys.key_identifier.hash"]
        self.kept = 1 if "past_keys_not_kept" in set(faults) else binding["rest.past_keys_kept"]
        self._keys: dict[str, deque[tuple[bytes, bytes, bytes]]] = {}  # ue_id -> (key_id, e2m_int_key, rand)
        self._lock = threading.RLock()  # a lazy provisioning provisions under it
        self._lazily: Callable[[str], Any | None] = lambda _ue_id: None

    def provision_lazily(self, subscriber_of: Callable[[str], Any | None]) -> EmksStore:
        """Subscribers not provisioned up front (`pixit.subscriber_ranges`): the first time a UE id is asked for,
        `subscriber_of(ue_id)` gives its PIXIT subscriber, or None, and its `rands` are provisioned then, oldest
        first. A million ranged UEs then cost nothing until used; returns the store."""
        self._lazily = subscriber_of
        return self

    def _entries(self, ue_id: str) -> deque[tuple[bytes, bytes, bytes]] | None:
        """The UE's runs, provisioning a ranged UE on first use; call with the lock held."""
        entries = self._keys.get(ue_id)
        if entries is None:
            subscriber = self._lazily(ue_id)
            if subscriber is not None:
                self._keys[ue_id] = entries = deque(maxlen=self.kept)
                for rand in subscriber.rands:
                    self.provision_subscriber(subscriber, rand)
        return entries

    def provision(self, ue_id: str, ck: bytes, ik: bytes, rand: bytes) -> bytes:
        """Store the e2m_int_key of one AKA run (as the HSS would push it) and return its key identifier."""
        e2m_int_key = derive(self._int_spec, ck + ik, {"rand": rand}).value
        key_id = key_identifier(self._id_scheme, self._id_bits, rand=rand, key=e2m_int_key, hash_name=self._id_hash)
        with self._lock:
            entries = self._entries(ue_id)
            if entries is None:
                self._keys[ue_id] = entries = deque(maxlen=self.kept)
            entries.append((key_id, e2m_int_key, rand))
        return key_id

    def provision_from_aka(self, ue_id: str, k: bytes, opc: bytes, rand: bytes) -> bytes:
        """As `provision`, running MILENAGE f3/f4 on the subscriber's K and OPc for this RAND."""
        _res, ck, ik, _ak = Milenage(k, opc).f2345(rand)
        return self.provision(ue_id, ck, ik, rand)

    def provision_subscriber(self, subscriber: Any, rand: bytes) -> bytes:
        """As `provision_from_aka` for a PIXIT subscriber (its imsi, k, and opc or op)."""
        opc = subscriber.opc or compute_opc(subscriber.k, subscriber.op)
        return self.provision_from_aka(subscriber.imsi, subscriber.k, opc, rand)

    def provision_subscribers(self, subscribers: Iterable[Any]) -> EmksStore:
        """Every AKA run the PIXIT subscribers list (`rands`), oldest first, as the HSS would push them (seed
        002); returns the store."""
        for subscriber in subscribers:
            for rand in subscriber.rands:
                self.provision_subscriber(subscriber, rand)
        return self

    def lookup(self, client_id: str, ue_id: str, key_id: bytes) -> bytes | None:
        with self._lock:
            entries = list(self._entries(ue_id) or ())
        for stored_id, e2m_int_key, rand in reversed(entries):  # newest first if two RANDs share their LSBs
            if stored_id == key_id:
                return self._e2m_key(client_id, stored_id, e2m_int_key, rand)
        return None

    def latest(self, client_id: str, ue_id: str) -> tuple[bytes, bytes] | None:
        with self._lock:
            entries = self._entries(ue_id)
            newest = entries[-1] if entries else None
        if newest is None:
            return None
        key_id, e2m_int_key, rand = newest
        return key_id, self._e2m_key(client_id, key_id, e2m_int_key, rand)

    def _e2m_key(self, client_id: str, key_id: bytes, e2m_int_key: bytes, rand: bytes) -> bytes:
        """e2m_key for one EMSE; key_id and rand are offered too, for a binding whose e2m_key names them."""
        inputs = {"emse_id": client_id.encode("utf-8"), "key_id": key_id, "rand": rand}
        return derive(self._key_spec, e2m_int_key, inputs).value
