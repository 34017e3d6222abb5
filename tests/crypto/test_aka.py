"""AKA on both sides: HE vectors, USIM AUTN verification, SQN freshness (TS 33.102 C.2) and AUTS."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.binding import load_binding
from conformance.crypto.aka import (
    AuthError,
    AutnOutcome,
    SqnPolicy,
    SqnState,
    Usim,
    generate_vector,
    resynchronise,
    sqn_bytes,
)
from conformance.crypto.milenage import Milenage
from tests.kat import flip_bit, h, load_fixture

SETS = load_fixture("milenage_ts35208.yaml")["vectors"]
BINDING = load_binding()
POLICY = SqnPolicy(BINDING["aka.sqn.ind_bits"], BINDING["aka.sqn.delta"], BINDING["aka.sqn.age_limit"])
RESYNC_AMF = bytes.fromhex(BINDING["aka.resync_amf"])
IND = 1 << POLICY.ind_bits


def usim_for(tv, sqn_ms=None):
    """A USIM whose last accepted SQN is, by default, one SEQ below the test set's SQN in the same IND slot:
    a blank USIM (SEQ_MS = 0) rightly refuses the sets' SQNs as more than Δ ahead."""
    if sqn_ms is None:
        sqn_ms = int(tv["sqn"], 16) - IND
    return Usim(Milenage(h(tv["k"]), h(tv["opc"])), POLICY, RESYNC_AMF, sqn_ms)


@pytest.mark.parametrize("tv", SETS, ids=[f"set{v['set']}" for v in SETS])
def test_usim_accepts_the_published_vector_and_yields_published_keys(tv):
    """A USIM in sync accepts AUTN from the test set and returns the published RES, CK and IK."""
    he = Milenage(h(tv["k"]), h(tv["opc"]))
    vector = generate_vector(he, h(tv["rand"]), h(tv["sqn"]), h(tv["amf"]))
    assert (vector.xres, vector.ck, vector.ik, vector.ak) == (h(tv["f2"]), h(tv["f3"]), h(tv["f4"]), h(tv["f5"]))
    check = usim_for(tv).authenticate(vector.rand, vector.autn, require_separation_bit=False)
    assert check.outcome is AutnOutcome.OK, check.reason
    assert (check.res, check.ck, check.ik, check.sqn) == (h(tv["f2"]), h(tv["f3"]), h(tv["f4"]), h(tv["sqn"]))


SET1 = SETS[0]
VECTOR1 = generate_vector(Milenage(h(SET1["k"]), h(SET1["opc"])), h(SET1["rand"]), h(SET1["sqn"]), h(SET1["amf"]))


@pytest.mark.parametrize("bit", range(128))
def test_any_flipped_autn_bit_is_a_mac_failure(bit):
    """SQN⊕AK, AMF and MAC-A are all covered by MAC-A: a one-bit change anywhere is caught."""
    check = usim_for(SET1).authenticate(VECTOR1.rand, flip_bit(VECTOR1.autn, bit), require_separation_bit=False)
    assert check.outcome is AutnOutcome.MAC_FAILURE
    assert not check.res and not check.ck


def test_wrong_subscriber_key_is_a_mac_failure():
    check = usim_for(SETS[1]).authenticate(VECTOR1.rand, VECTOR1.autn, require_separation_bit=False)
    assert check.outcome is AutnOutcome.MAC_FAILURE


def test_replayed_autn_is_a_synch_failure_with_verifiable_auts():
    usim = usim_for(SET1)
    assert usim.authenticate(VECTOR1.rand, VECTOR1.autn, require_separation_bit=False).outcome is AutnOutcome.OK
    replay = usim.authenticate(VECTOR1.rand, VECTOR1.autn, require_separation_bit=False)
    assert replay.outcome is AutnOutcome.SYNCH_FAILURE
    assert len(replay.auts) == 14 and not replay.res
    he = Milenage(h(SET1["k"]), h(SET1["opc"]))
    assert resynchronise(he, VECTOR1.rand, replay.auts, RESYNC_AMF) == h(SET1["sqn"])


def test_auts_is_built_from_published_f5star_and_f1star():
    """AUTS = (SQN_MS ⊕ AK*) ‖ MAC-S: with SQN_MS = the set's SQN and the dummy AMF, the first half uses the
    published f5*; MAC-S is f1* over that AMF (the published f1* uses the set's AMF, so it must differ)."""
    usim = usim_for(SET1, sqn_ms=int(SET1["sqn"], 16))
    auts = usim.auts(h(SET1["rand"]))
    assert auts[:6] == bytes(a ^ b for a, b in zip(h(SET1["sqn"]), h(SET1["f5star"]), strict=True))
    assert auts[6:] != h(SET1["f1star"])  # AMF* is not the set's AMF b9b9
    he = Milenage(h(SET1["k"]), h(SET1["opc"]))
    assert auts[6:] == he.f1_f1star(h(SET1["rand"]), h(SET1["sqn"]), RESYNC_AMF)[1]


@pytest.mark.parametrize("bit", [0, 47, 48, 111])
def test_he_rejects_a_corrupted_auts(bit):
    usim = usim_for(SET1, sqn_ms=int(SET1["sqn"], 16))
    auts = usim.auts(h(SET1["rand"]))
    with pytest.raises(AuthError, match="MAC-S"):
        resynchronise(Milenage(h(SET1["k"]), h(SET1["opc"])), h(SET1["rand"]), flip_bit(auts, bit), RESYNC_AMF)


def test_he_rejects_auts_of_wrong_length():
    with pytest.raises(AuthError, match="14 octets"):
        resynchronise(Milenage(h(SET1["k"]), h(SET1["opc"])), h(SET1["rand"]), bytes(13), RESYNC_AMF)


def _vector_with(sqn: int, amf: bytes = bytes.fromhex("8000")):
    he = Milenage(h(SET1["k"]), h(SET1["opc"]))
    return generate_vector(he, h(SET1["rand"]), sqn_bytes(sqn), amf)


def test_separation_bit_is_enforced_only_when_required():
    vector = _vector_with(IND, amf=bytes.fromhex("7fff"))  # every AMF bit but bit 0
    assert usim_for(SET1, sqn_ms=0).authenticate(vector.rand, vector.autn, require_separation_bit=True).outcome is (
        AutnOutcome.AMF_SEPARATION
    )
    assert usim_for(SET1, sqn_ms=0).authenticate(vector.rand, vector.autn, require_separation_bit=False).outcome is (
        AutnOutcome.OK
    )
    ok = _vector_with(IND, amf=bytes.fromhex("8000"))
    assert (
        usim_for(SET1, sqn_ms=0).authenticate(ok.rand, ok.autn, require_separation_bit=True).outcome is AutnOutcome.OK
    )


def test_delta_limit_boundary():
    """TS 33.102 C.2.1: accepted only if SEQ − SEQ_MS ≤ Δ."""
    base_seq = 1000
    at_limit = (base_seq + POLICY.delta) << POLICY.ind_bits
    beyond = (base_seq + POLICY.delta + 1) << POLICY.ind_bits
    for sqn, outcome in ((at_limit, AutnOutcome.OK), (beyond, AutnOutcome.SYNCH_FAILURE)):
        usim = usim_for(SET1, sqn_ms=base_seq << POLICY.ind_bits)
        vector = _vector_with(sqn)
        assert usim.authenticate(vector.rand, vector.autn, require_separation_bit=False).outcome is outcome


def test_age_limit_boundary():
    """TS 33.102 C.2.2: an SQN from another IND slot is accepted only if SEQ_MS − SEQ < L."""
    state = SqnState(POLICY)
    top = 10_000
    state.accept(top << POLICY.ind_bits)  # slot 0 at SEQ_MS = top
    just_young = ((top - POLICY.age_limit + 1) << POLICY.ind_bits) | 1
    too_old = ((top - POLICY.age_limit) << POLICY.ind_bits) | 2
    assert state.check(just_young) is None
    assert "L =" in state.check(too_old)


def test_each_ind_slot_keeps_its_own_seq():
    """C.2.2: SQNs of different IND slots may arrive out of order; a reuse within one slot is refused."""
    state = SqnState(POLICY)
    state.accept((50 << POLICY.ind_bits) | 3)
    assert state.check((49 << POLICY.ind_bits) | 4) is None  # older SEQ, other slot, within L
    assert "not above" in state.check((50 << POLICY.ind_bits) | 3)
    assert state.highest == (50 << POLICY.ind_bits) | 3


def test_blank_usim_refuses_an_sqn_more_than_delta_ahead():
    check = usim_for(SET1, sqn_ms=0).authenticate(VECTOR1.rand, VECTOR1.autn, require_separation_bit=False)
    assert check.outcome is AutnOutcome.SYNCH_FAILURE and "Δ" in check.reason


def test_wrong_autn_length_is_a_failure_not_an_exception():
    check = usim_for(SET1).authenticate(VECTOR1.rand, VECTOR1.autn[:15], require_separation_bit=False)
    assert check.outcome is AutnOutcome.MAC_FAILURE and "16 octets" in check.reason


keys16 = st.binary(min_size=16, max_size=16)


@given(
    k=keys16,
    opc=keys16,
    rand=keys16,
    sqn_ms=st.integers(0, 2**40),
    step=st.integers(1, 2**20),
    amf=st.binary(min_size=2, max_size=2),
)
def test_fresh_vectors_verify_and_resync_recovers_sqn_ms(k, opc, rand, sqn_ms, step, amf):
    """Any subscriber: a vector with SEQ above SEQ_MS (same slot) verifies; replaying it yields an AUTS from
    which the HE recovers exactly the USIM's SQN_MS."""
    he = Milenage(k, opc)
    usim = Usim(Milenage(k, opc), POLICY, RESYNC_AMF, sqn_ms)
    fresh = sqn_ms + (step << POLICY.ind_bits)
    vector = generate_vector(he, rand, sqn_bytes(fresh), amf)
    check = usim.authenticate(rand, vector.autn, require_separation_bit=False)
    assert check.outcome is AutnOutcome.OK and check.res == vector.xres and check.ck == vector.ck
    replay = usim.authenticate(rand, vector.autn, require_separation_bit=False)
    assert replay.outcome is AutnOutcome.SYNCH_FAILURE
    assert resynchronise(he, rand, replay.auts, RESYNC_AMF) == sqn_bytes(usim.state.highest)
