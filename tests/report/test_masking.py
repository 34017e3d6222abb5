"""Secrets are masked in every output of a run unless --reveal-secrets: proved on a real run in which a key
check fails (EMKS `key_id_ignored` hands out the wrong e2m_key), by searching every file of the run folder for
K, OPc and every key the harness or the SUT could have derived, as hex and as raw octets."""

from __future__ import annotations

import json

import pytest

from conformance.crypto.keys import KeyHierarchy
from conformance.crypto.milenage import Milenage
from conformance.engine.lint import load_suite
from conformance.engine.model import suite_dir
from conformance.engine.results import Result, Verdict
from conformance.masking import Secrets, check_secrets, mask_result, mask_text, secret_name
from conformance.profile import load_profile
from tests.engine import run_against_reference
from tests.runs import ROOT

PROFILE = load_profile(ROOT / "profiles" / "reference-emks.yaml")


def emks_secrets() -> dict[str, bytes]:
    """K, OPc, and for every provisioned AKA run CK, IK and every key of the hierarchy for both EMSEs the
    suite plays (emse-1, emse-2), derived here independently of the run."""
    subscriber = PROFILE.pixit.subscribers[0]
    found = {"K": subscriber.k, "OPc": subscriber.opc}
    hierarchy = KeyHierarchy.from_binding(PROFILE.binding)
    for i, rand in enumerate(subscriber.rands):
        _res, ck, ik, _ak = Milenage(subscriber.k, subscriber.opc).f2345(rand)
        found[f"CK{i}"], found[f"IK{i}"] = ck, ik
        for emse in ("emse-1", "emse-2"):
            derived, _ = hierarchy.derive_all(ck=ck, ik=ik, key_agreement="umts", inputs={"emse_id": emse.encode()})
            found.update({f"{name}{i}/{emse}": d.value for name, d in derived.items()})
    return found


SECRETS = emks_secrets()


def leaks(run_dir) -> dict[str, list[str]]:
    """Which secrets appear in which files of the run folder (hex in either case, or raw octets)."""
    found: dict[str, list[str]] = {}
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        data = path.read_bytes().lower()
        for name, value in SECRETS.items():
            if value.hex().encode() in data or value.lower() in data:
                found.setdefault(name, []).append(str(path.relative_to(run_dir)))
    return found


def test_a_failing_key_check_leaves_no_secret_in_any_output(runs):
    run_dir = runs["key_id_ignored"]
    assert leaks(run_dir) == {}
    assert {"junit.xml", "results.jsonl", "compliance.json", "report.html"} <= {p.name for p in run_dir.iterdir()}
    assert any((run_dir / "allure-results").iterdir())


def test_reveal_secrets_shows_the_keys_the_masked_run_hides(runs):
    """The same run with --reveal-secrets: the keys of the failing check are there in clear, so the search
    above can find a leak."""
    found = leaks(runs["key_id_ignored_revealed"])
    assert found, "the revealed run should show the keys of the failed key checks"
    assert any(name.startswith("e2m_key") for name in found)
    assert "results.jsonl" in found[next(n for n in found if n.startswith("e2m_key"))]
    doc = json.loads((runs["key_id_ignored_revealed"] / "compliance.json").read_text())
    assert doc["run"]["secrets"] == "revealed"


def test_a_masked_key_can_still_be_compared(runs):
    """The mask of a key carries a digest prefix and the length: the certifier can tell which key it was."""
    doc = json.loads((runs["key_id_ignored"] / "compliance.json").read_text())
    case = next(c for c in doc["cases"] if c["id"] == "EMKS-KEY-011")
    masks = {mask_text(v): n for n, v in SECRETS.items()}
    assert case["expected"] in masks and case["observed"] in masks, case
    assert case["expected"] != case["observed"]
    assert masks[case["expected"]].startswith("e2m_key") and masks[case["observed"]].startswith("e2m_key")
    assert case["expected"] in case["reason"] and case["observed"] in case["reason"]
    revealed = json.loads((runs["key_id_ignored_revealed"] / "compliance.json").read_text())
    clear = next(c for c in revealed["cases"] if c["id"] == "EMKS-KEY-011")
    assert mask_text(bytes.fromhex(clear["expected"])) == case["expected"]


def test_an_hse_key_check_failing_under_a_fault_is_masked_in_the_result(tmp_path):
    """The HSE side: wrong_kdf_key makes the KInt_EAS_PSK check fail; the runner hands the keys it met."""
    hse = load_profile(ROOT / "profiles" / "reference-hse.yaml")
    cases, _ = load_suite(suite_dir("hse").glob("*.yaml"))
    case = next(c for c in cases if c.id == "HSE-SR-021")
    result = run_against_reference(hse, [case], tmp_path, frozenset({"wrong_kdf_key"}))[case.id]
    assert result.verdict is Verdict.FAIL, result.reason
    clear = json.dumps(result.to_json(), default=lambda b: b.hex()).lower()
    masked = json.dumps(mask_result(result).to_json(), ensure_ascii=False)
    subscriber = hse.pixit.subscribers[0]
    hidden = [v.hex() for v in (result.expected, result.observed) if isinstance(v, bytes)] + [
        bytes.fromhex(v).hex() for v in (result.expected, result.observed) if isinstance(v, str)
    ]
    assert len(hidden) == 2 and all(h in clear for h in hidden)
    for value in [*hidden, subscriber.k.hex()]:
        assert value not in masked.lower()
    assert masked.count("•••• (sha256") >= 4  # expected, observed, and both again in the reason


def test_scrub_finds_a_secret_as_hex_bytes_and_repr_and_under_key_names():
    key = bytes(range(16))
    book = Secrets([key])
    assert book.scrub(key.hex().upper()) == mask_text(key)
    assert book.scrub(f"got {key!r} here") == f"got {mask_text(key)} here"
    assert book.scrub({"x": key}) == {"x": mask_text(key)}
    other = bytes(range(1, 17))
    scrubbed = Secrets().scrub({"kint_eas_psk": other.hex(), "rand": other.hex(), "key_id": other.hex()})
    assert scrubbed == {"kint_eas_psk": mask_text(other), "rand": other.hex(), "key_id": other.hex()}


@pytest.mark.parametrize(
    "name, secret",
    [
        ("k", True),
        ("opc", True),
        ("kint_eas_psk", True),
        ("e2m_key", True),
        ("key_client.keys", True),
        ("private_key", True),
        ("key_id", False),
        ("next_key_id", False),
        ("public_key", False),
        ("rand", False),
        ("autn", False),
        ("res", False),
        ("key_agreement", False),
        ("pixit_sha256", False),
    ],
)
def test_secret_names(name, secret):
    assert secret_name(name) is secret


def test_only_a_failed_check_on_a_key_marks_its_values_as_key_material():
    key = bytes(range(32))
    body = f"HTTP 200: <ueKey><key>{key.hex()}</key></ueKey>"
    assert check_secrets("the key delivered", [200], body) == {key}
    assert check_secrets("the client gets the e2m_key the harness derived", key.hex(), key) == {key}
    assert check_secrets("the USIM's verdict on AUTN", "verifies", key.hex()) == set()
    assert check_secrets("header field key_id", 1, key.hex()) == set()


def test_a_harness_error_traceback_quoting_k_is_masked():
    k = PROFILE.pixit.subscribers[0].k
    result = Result("X-1", "t", "shall", [], Verdict.ERROR, reason=f"ValueError: bad {k.hex()}", observed=repr(k))
    result.secrets = {k}
    masked = mask_result(result)
    assert k.hex() not in masked.reason and repr(k) not in masked.observed and mask_text(k) in masked.reason


def test_the_runner_hands_every_key_a_case_met_even_one_no_step_kept(tmp_path):
    """A passing EMKS key fetch: the provisioned keys of its EMSE (derived by steps that keep none) are
    among the result's secrets, so a key server's log or a traceback quoting one would be masked too."""
    cases, _ = load_suite(suite_dir("emks").glob("*.yaml"))
    case = next(c for c in cases if c.id == "EMKS-KEY-001")
    result = run_against_reference(PROFILE, [case], tmp_path)[case.id]
    assert result.verdict is Verdict.PASS, result.reason
    wanted = {n: v for n, v in SECRETS.items() if n.endswith("emse-1") or n.startswith(("K", "OPc", "CK", "IK"))}
    assert {n for n, v in wanted.items() if v not in result.secrets} == set()
    quoted = Result("X", "t", "shall", [], Verdict.ERROR, reason="", trace=[{"body": SECRETS["e2m_key4/emse-1"].hex()}])
    quoted.secrets = result.secrets
    assert SECRETS["e2m_key4/emse-1"].hex() not in json.dumps(mask_result(quoted).to_json(), ensure_ascii=False)
