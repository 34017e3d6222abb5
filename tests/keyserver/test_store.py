"""EmksStore: e2m_int_key per UE and AKA run, a bounded history, e2m_key derived per requesting EMSE."""

from __future__ import annotations

import hashlib

import pytest

from conformance.binding.loader import load_binding
from conformance.crypto.keys import KeyHierarchy
from conformance.crypto.milenage import Milenage
from conformance.keyserver.store import EmksStore, KeyStore
from tests.kat import h
from tests.keyserver import OPC, RAND, SET_1, K, rand_of_run

BINDING = load_binding()
CK, IK = h(SET_1["f3"]), h(SET_1["f4"])


def e2m_keys(ck: bytes, ik: bytes, emse_id: str) -> tuple[bytes, bytes]:
    derived, _ = KeyHierarchy.from_binding(BINDING).derive_all(
        ck=ck, ik=ik, key_agreement="umts", inputs={"emse_id": emse_id.encode()}
    )
    return derived["e2m_int_key"].value, derived["e2m_key"].value


def test_emks_store_is_a_key_store():
    store: KeyStore = EmksStore(BINDING)
    assert store.lookup("emse-1", "ue", bytes(4)) is None and store.latest("emse-1", "ue") is None


def test_key_id_is_the_binding_number_of_least_significant_bits_of_rand():
    key_id = EmksStore(BINDING).provision("ue", CK, IK, RAND)
    assert key_id == RAND[-BINDING["keys.key_identifier.bits"] // 8 :] == h("ae47bf35")


def test_key_hash_scheme_hashes_e2m_int_key():
    binding = load_binding({"keys.key_identifier.scheme": "key_hash"})
    e2m_int_key, _ = e2m_keys(CK, IK, "emse-1")
    assert EmksStore(binding).provision("ue", CK, IK, RAND) == hashlib.sha256(e2m_int_key).digest()[:4]


def test_lookup_derives_e2m_key_for_the_requesting_emse():
    store = EmksStore(BINDING)
    key_id = store.provision_from_aka("ue", K, OPC, RAND)
    for emse_id in ("emse-1", "emse-2"):
        assert store.lookup(emse_id, "ue", key_id) == e2m_keys(CK, IK, emse_id)[1]
    assert store.lookup("emse-1", "ue", key_id) != store.lookup("emse-2", "ue", key_id)
    assert store.lookup("emse-1", "other-ue", key_id) is None


def test_history_keeps_past_keys_kept_runs_and_latest_is_the_newest():
    store = EmksStore(BINDING)
    kept = BINDING["rest.past_keys_kept"]
    ids = [store.provision_from_aka("ue", K, OPC, rand_of_run(run)) for run in range(kept + 1)]
    assert store.lookup("emse-1", "ue", ids[0]) is None
    assert all(store.lookup("emse-1", "ue", key_id) for key_id in ids[1:])
    _res, ck, ik, _ak = Milenage(K, OPC).f2345(rand_of_run(kept))
    assert store.latest("emse-1", "ue") == (ids[-1], e2m_keys(ck, ik, "emse-1")[1])


def test_history_bound_follows_the_binding_and_the_fault():
    assert EmksStore(load_binding({"rest.past_keys_kept": 5})).kept == 5
    store = EmksStore(BINDING, faults={"past_keys_not_kept"})
    old, new = (store.provision_from_aka("ue", K, OPC, rand_of_run(run)) for run in (0, 1))
    assert store.kept == 1 and store.lookup("emse-1", "ue", old) is None and store.lookup("emse-1", "ue", new)


def test_a_binding_the_emks_cannot_follow_is_refused_by_key():
    with pytest.raises(ValueError, match=r"keys.derivations.e2m_int_key.key"):
        EmksStore(load_binding({"keys.derivations.e2m_int_key.key": "kint"}))
