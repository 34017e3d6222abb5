"""The BEST / e2m key hierarchy, evaluated from the binding."""

import pytest

from conformance.binding import load_binding
from conformance.crypto.kdf import kdf
from conformance.crypto.keys import (
    INPUT_NAMES,
    ROOT_NAMES,
    KeyHierarchy,
    key_identifier,
    param_octets,
    plmn_identity,
    serving_network_plmn,
)
from tests.kat import check_known_answer, h, load_fixture

KHSE = load_fixture("khse_selfcomputed.yaml")
SET1 = load_fixture("milenage_ts35208.yaml")["vectors"][0]
INPUTS = KHSE["inputs"]
CK, IK = h(INPUTS["ck"]), h(INPUTS["ik"])
BASE = {"snn": INPUTS["snn"].encode(), "sqn_xor_ak": h(INPUTS["sqn_xor_ak"])}


def derive(binding=None, agreement="5g_aka", **extra):
    hierarchy = KeyHierarchy.from_binding(binding or load_binding())
    naf_key = extra.pop("naf_key", None)
    return hierarchy.derive_all(ck=CK, ik=IK, key_agreement=agreement, inputs={**BASE, **extra}, naf_key=naf_key)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("khse", "khse_0x63"), ("ck_ik_prime", "ck_ik_prime"), ("khse_eap_aka_prime", "khse_0x64")],
)
def test_khse_matches_the_digest_self_computed_values(name, expected):
    """Digest 5.5: KHSE for 5G AKA (FC 0x63) and EAP-AKA' (FC 0x64), computed independently during research.
    Not 3GPP test data (none is published); a self-consistency check with a second implementation."""

    def fn(ck, ik, snn, sqn_xor_ak):
        derived, _ = KeyHierarchy.from_binding(load_binding()).derive_all(
            ck=ck, ik=ik, key_agreement="eap_aka_prime", inputs={"snn": snn, "sqn_xor_ak": sqn_xor_ak}
        )
        return derived[name].value

    check_known_answer(fn, {"ck": CK, "ik": IK, **BASE}, h(KHSE[expected]))


def test_khse_uses_the_first_six_octets_of_autn():
    assert h(INPUTS["autn"])[:6] == BASE["sqn_xor_ak"]


def test_every_default_derivation_names_known_inputs_and_keys():
    binding = load_binding()
    hierarchy = KeyHierarchy.from_binding(binding)
    assert set(hierarchy.root_by_key_agreement) == {"umts", "eps", "5g_aka", "eap_aka_prime"}
    everything = dict.fromkeys(INPUT_NAMES, b"\x01")
    for spec in hierarchy.specs.values():
        assert spec.key in ROOT_NAMES or spec.key in hierarchy.specs, spec
        for param in spec.params:
            param_octets(param, everything)  # raises on an unknown input name


def test_the_root_follows_the_key_agreement():
    """KInt is keyed with CK‖IK, KASME or KHSE as the key agreement selects (TS 33.163 5)."""
    extra = {"sn_id": bytes.fromhex("024830"), "enc_alg_id": b"\x02", "int_alg_id": b"\x02"}
    seen = {}
    for agreement, root in (
        ("umts", "ck_ik"),
        ("eps", "kasme"),
        ("5g_aka", "khse"),
        ("eap_aka_prime", "khse_eap_aka_prime"),
    ):
        derived, _ = derive(agreement=agreement, **extra)
        assert derived["kint"].key_name == root
        root_value = CK + IK if root == "ck_ik" else derived[root].value
        spec = derived["kint"].spec
        assert derived["kint"].value == kdf(root_value, spec.fc, *(v for _, v in derived["kint"].inputs))
        seen[agreement] = derived["kint"].value
    assert len(set(seen.values())) == 4


def test_a_binding_override_changes_exactly_the_keys_below_it():
    """Keys come from the binding, not from literals: a new FC for KInt changes KInt and its children only."""
    extra = {"enc_alg_id": b"\x02", "int_alg_id": b"\x02", "eas_id": b"eas-1"}
    before, _ = derive(**extra)
    after, _ = derive(load_binding({"keys.derivations.kint.fc": 0xE0}), **extra)
    below_kint = {"kint", "kint_enc", "kint_int", "ke2m_enc", "ke2m_int", "kint_e2e", "kint_eas_psk"}
    for name in before:
        assert (before[name].value != after[name].value) == (name in below_kint), name


def test_algorithm_keys_are_128_least_significant_bits():
    derived, _ = derive(enc_alg_id=b"\x02", int_alg_id=b"\x02")
    k = derived["kint_enc"]
    full = kdf(derived["kint"].value, k.spec.fc, b"\x01", b"\x02")
    assert k.value == full[16:] and len(k.value) == 16


def test_eas_keys_depend_on_the_eas_id():
    a, _ = derive(eas_id=b"eas-a")
    b, _ = derive(eas_id=b"eas-b")
    assert a["kint_eas_psk"].value != b["kint_eas_psk"].value
    assert a["kint_eas_psk"].value != a["kint_e2e"].value  # same key and params, told apart by FC


def test_e2m_keys_follow_seed_002():
    """e2m_int_key = KDF(CK‖IK, string); e2m_key = KDF(e2m_int_key, EMSE_Id) (seed 002 6.x.2.1)."""
    binding = load_binding()
    derived, _ = derive(emse_id=b"emse-1")
    purpose = binding["keys.derivations.e2m_int_key.params"][0].removeprefix("utf8:").encode()
    e2m_int = kdf(CK + IK, binding["keys.derivations.e2m_int_key.fc"], purpose)
    assert derived["e2m_int_key"].value == e2m_int
    assert derived["e2m_key"].value == kdf(e2m_int, binding["keys.derivations.e2m_key.fc"], b"emse-1")
    other, _ = derive(emse_id=b"emse-2")
    assert other["e2m_key"].value != derived["e2m_key"].value  # key separation between EMSEs


def test_combined_third_party_key_follows_seed_001():
    """e2e_key = KDF(Ks_(ext/int)_NAF, Ka) (seed 001 6.x.2)."""
    binding = load_binding()
    naf_key, ka = bytes(range(32)), bytes.fromhex("00112233445566778899aabbccddeeff")
    derived, skipped = derive(naf_key=naf_key, third_party_key=ka)
    assert derived["e2e_key"].value == kdf(naf_key, binding["keys.derivations.e2e_key.fc"], ka)
    _, skipped = derive(third_party_key=ka)
    assert skipped["e2e_key"] == "needs naf_key"


def test_missing_inputs_are_reported_not_raised():
    derived, skipped = derive()
    assert "khse" in derived
    assert skipped["kasme"] == "needs sn_id"
    assert skipped["kint_enc"] == "needs enc_alg_id"
    assert skipped["e2m_key"] == "needs emse_id"


def test_unknown_key_agreement_is_named():
    with pytest.raises(ValueError, match="unknown key agreement 'lte'"):
        derive(agreement="lte")


def test_key_identifier_is_the_32_lsb_of_rand():
    """Seed 002 6.x.2.1 alternative 1: e.g. the 32 least significant bits of RAND."""
    binding = load_binding()
    rand = h(SET1["rand"])
    kid = key_identifier(binding["keys.key_identifier.scheme"], binding["keys.key_identifier.bits"], rand=rand)
    assert kid == rand[-4:] == bytes.fromhex("ae47bf35")


def test_key_identifier_hash_scheme_and_errors():
    assert len(key_identifier("key_hash", 32, key=b"k" * 32)) == 4
    assert key_identifier("key_hash", 32, key=b"a" * 32) != key_identifier("key_hash", 32, key=b"b" * 32)
    for scheme, kwargs, message in (
        ("rand_lsb", {}, "needs RAND"),
        ("key_hash", {}, "needs the key"),
        ("other", {"rand": bytes(16)}, "unknown key identifier scheme"),
        ("rand_lsb", {"rand": bytes(16), "bits": 12}, "whole octets"),
    ):
        bits = kwargs.pop("bits", 32)
        with pytest.raises(ValueError, match=message):
            key_identifier(scheme, bits, **kwargs)


@pytest.mark.parametrize(
    ("mcc", "mnc", "plmn"),
    [
        ("208", "034", "024830"),  # the SN id of the TS 33.401 A.2 KASME vector (digest 8.3), read back
        ("208", "93", "02f839"),  # a 2-digit MNC: F fills MNC digit 3
        ("310", "410", "130014"),  # a 3-digit MNC
        ("001", "01", "00f110"),  # the test PLMN of the reference subscribers' IMSIs
    ],
)
def test_plmn_identity_is_the_ts_24_008_octet_coding(mcc, mnc, plmn):
    """The 3-octet PLMN identity that is KASME's SN id (TS 24.008 10.5.1.13, TS 24.301 9.9.3.32)."""
    assert plmn_identity(mcc, mnc) == bytes.fromhex(plmn)


def test_kasme_through_the_binding_with_the_sn_id_from_mcc_and_mnc():
    kasme = load_fixture("kdf_ts33220.yaml")["kasme"]
    inputs = {"sn_id": plmn_identity("208", "034"), "sqn_xor_ak": h(kasme["sqn_xor_ak"])}
    derived, _ = KeyHierarchy.from_binding(load_binding()).derive_all(
        ck=h(kasme["ck"]), ik=h(kasme["ik"]), key_agreement="eps", inputs=inputs
    )
    assert derived["kasme"].value == h(kasme["kasme"])
    assert derived["kint"].key_name == "kasme"


def test_serving_network_name_gives_mcc_and_the_mnc_as_written():
    assert serving_network_plmn("5G:mnc001.mcc001.3gppnetwork.org") == ("001", "001")
    assert serving_network_plmn("5G:mnc093.mcc208.3gppnetwork.org") == ("208", "093")


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("mnc001.mcc001.3gppnetwork.org", "not a 5G serving network name"),
        ("5G:mcc001.mnc001.3gppnetwork.org", "not a 5G serving network name"),
        ("5G:mnc01.mcc001.3gppnetwork.org", "not 3 digits each"),
    ],
)
def test_what_is_no_serving_network_name_is_refused(bad, why):
    with pytest.raises(ValueError, match=why):
        serving_network_plmn(bad)
    with pytest.raises(ValueError, match="3-digit MCC"):
        plmn_identity("01", "01")
