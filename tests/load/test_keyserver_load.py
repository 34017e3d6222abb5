"""The key-server load users through `best-conformance load` against the served reference SUTs (real processes,
loopback, mutual TLS): a short run verifies every key and reports no failure against the conformant EMKS (EmseUser)
and HSE (EasUser), reports the overload of fault keyserver_drops_above_rate, which no conformance case catches, as
transport failures (HTTP 503), and a wrong key (fault key_id_ignored) as verification failures.

Few users and short runs, so that a loaded two-core host still runs them well inside the profiles' reply timeout."""

from __future__ import annotations

import pytest

from tests.load.runs import PROFILES, load, summary

EMKS = ("--profile", str(PROFILES / "reference-emks.yaml"), "--reference")
HSE = ("--profile", str(PROFILES / "reference-hse.yaml"), "--reference")
NO_FAILURE = {"verification": 0, "transport": 0, "by_reason": []}
# EmseUser: 3 UEs a registration (EmseUser.fetches), each with the 2 runs of reference-emks.yaml's range
KEYS_PER_REGISTRATION = 3 * 2


@pytest.mark.slow  # a load run: some 6 s
def test_emse_users_get_every_key_right_from_the_conformant_emks(tmp_path):
    code, err, folder = load(tmp_path, *EMKS, "-u", "8", "-t", "3s")
    result = summary(folder, err)
    assert code == 0 and result["outcome"] == "pass", err
    assert result["failures"] == NO_FAILURE and result["requests"]["failures"] == 0, result["failures"]
    assert result["settings"]["user_classes"] == ["EmseUser"] and result["reference"]["faults"] == []
    kinds = result["kinds"]
    assert set(kinds) == {"KEYS Register", "KEYS Fetch key", "KEYS Deregister"}, kinds
    registered = kinds["KEYS Register"]["requests"]
    assert registered >= 8 and kinds["KEYS Deregister"]["requests"] == registered, kinds  # a lifecycle a user at least
    assert kinds["KEYS Fetch key"]["requests"] == KEYS_PER_REGISTRATION * registered, kinds  # each of them whole


@pytest.mark.slow  # a load run: some 6 s
def test_eas_users_get_their_sessions_keys_from_the_conformant_hse(tmp_path):
    code, err, folder = load(tmp_path, *HSE, "--weight", "EasUser=1", "--weight", "EmsdpUe=0", "-u", "5", "-t", "3s")
    result = summary(folder, err)
    assert code == 0 and result["outcome"] == "pass", err
    assert result["failures"] == NO_FAILURE and result["requests"]["failures"] == 0, result["failures"]
    assert result["settings"]["user_classes"] == ["EasUser"], result["settings"]
    kinds = result["kinds"]
    fetched = kinds["KEYS Fetch key"]["requests"]
    assert fetched >= 5 and kinds["EMSDP Session for EAS"]["requests"] >= fetched, kinds  # a session a user at least
    assert kinds["KEYS Register"]["requests"] == kinds["KEYS Deregister"]["requests"] == fetched, kinds


@pytest.mark.slow  # a load run: some 6 s
def test_a_key_server_that_drops_requests_above_a_rate_fails_under_load(tmp_path):
    """The overloaded key server answers 503: a transport failure by design (keyserver_users.checked), never a
    verification failure; the run fails (exit 1). Ten users with no think time offer several times RATE_LIMIT
    (conformance.keyserver.app) requests a second on a quiet host (hundreds refused), barely more on a loaded
    two-core one (some 15 to 20 refused): a single 503 is what this asks."""
    code, err, folder = load(tmp_path, *EMKS, "--fault", "keyserver_drops_above_rate", "-u", "10", "-t", "3s")
    result = summary(folder, err)
    assert code == 1 and result["outcome"] == "fail", err
    failures = result["failures"]
    assert failures["verification"] == 0 and failures["transport"] > 0, failures
    assert all(e["class"] == "transport" and "HTTP 503" in e["example"] for e in failures["by_reason"]), failures
    assert result["reference"]["faults"] == ["keyserver_drops_above_rate"]


@pytest.mark.slow  # a load run: some 6 s
def test_a_wrong_key_under_load_is_a_verification_failure(tmp_path):
    """key_id_ignored answers every key id with the UE's newest key: the older run's key the users fetch is not the
    e2m_key they derive, and the answer still arrives (not a transport failure)."""
    code, err, folder = load(tmp_path, *EMKS, "--fault", "key_id_ignored", "-u", "5", "-t", "2s")
    result = summary(folder, err)
    assert code == 1 and result["outcome"] == "fail", err
    failures = result["failures"]
    assert failures["transport"] == 0 and failures["verification"] > 0, failures
    assert [(e["class"], e["kind"], e["reason"]) for e in failures["by_reason"]] == [
        ("verification", "KEYS Fetch key", "Fetch key: the key answered is not the e2m_key derived")
    ], failures
    kinds = result["kinds"]
    fetch, deregister = kinds["KEYS Fetch key"], kinds["KEYS Deregister"]  # a task ends at its first wrong key
    assert fetch["failures"] == fetch["requests"] == failures["verification"] > 0, kinds
    assert deregister["failures"] == 0 and deregister["requests"] >= fetch["requests"] - 5, kinds
