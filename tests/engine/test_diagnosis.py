"""Say why a SUT is silent (issue 19 item 5): when the message the SUT did not answer was protected, the reason
says whether the SUT's own protected messages in the case verify under the harness's keys. Shown on the
reading an implementer really had: COUNT's fields packed in another order than the binding's."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.embedded import embedded_reference
from conformance.engine.model import LintReport, load_cases
from conformance.engine.results import Verdict
from conformance.engine.runner import run_case
from conformance.keyserver.certs import CertificateDirectory
from conformance.profile import LoadedProfile, load_profile

ROOT = Path(__file__).resolve().parents[2]
PROFILE = load_profile(ROOT / "profiles" / "reference-hse.yaml")
MISREAD = {"protection.count.layout": ["counter", "session_id", "direction"]}  # not the binding's order

ECHO = """    - start_session: {}
    - send: user_data
      with: {data: "one"}
    - expect: user_data
"""
REPLAYED = """    - send: user_data
      with: {counter: replay}
    - expect: user_data
"""


def case(tmp_path: Path, steps: str):
    path = tmp_path / "T-1.yaml"
    path.write_text(
        "- id: T-1\n  title: test\n  refs: ['TS 33.163 6.2.2']\n  requirements: [BEST-CNT-002]\n"
        f"  level: shall\n  applies: {{sut: hse, pics: [modes.ue_to_hse]}}\n  steps:\n{steps}"
    )
    (loaded,) = load_cases([path], LintReport())
    return loaded


def harness_profile(running: LoadedProfile, binding: dict) -> LoadedProfile:
    """The running reference as the harness sees it, under the harness's own reading of the binding."""
    data = running.profile.model_dump(mode="json", exclude_none=True)
    data["binding"] = {**data.get("binding", {}), **binding}
    return load_profile(data)


def verdict(tmp_path, steps: str, *, faults: frozenset[str] = frozenset(), binding: dict | None = None):
    certs = CertificateDirectory(tmp_path / "certs")
    with embedded_reference(PROFILE, faults, certs=certs) as (running, certs):
        return run_case(case(tmp_path, steps), harness_profile(running, binding or {}), tmp_path, certs=certs)


def test_silence_to_a_misread_mac_points_at_the_binding_vectors(tmp_path):
    """The SUT discards every message whose MAC does not verify (the binding's invalid_mac reaction), so it sends
    nothing protected: the reason says that it cannot be told, and where to look."""
    result = verdict(tmp_path, ECHO, binding=MISREAD)
    assert result.verdict is Verdict.FAIL
    assert "the unanswered message was protected" in result.reason
    assert "sent no protected message in this case" in result.reason
    assert "best-conformance vectors" in result.reason


def test_macs_that_do_not_verify_say_the_sut_reads_the_binding_otherwise(tmp_path):
    """An HSE that accepts any MAC echoes under its own reading: the echo's MAC does not verify under ours, and
    the silence to a replay then says so."""
    result = verdict(tmp_path, ECHO + REPLAYED, faults=frozenset({"mac_not_verified"}), binding=MISREAD)
    assert result.verdict is Verdict.FAIL
    assert "1 of the SUT's 1 protected message(s) in this case do not verify under our keys" in result.reason
    assert "reads the binding otherwise" in result.reason


def test_when_the_keys_agree_the_silence_is_not_blamed_on_them(tmp_path):
    result = verdict(tmp_path, ECHO + REPLAYED)
    assert result.verdict is Verdict.FAIL
    assert "all 1 of the SUT's protected message(s) in this case verify under our keys" in result.reason


def test_an_unprotected_message_left_unanswered_says_nothing_of_protection(tmp_path):
    result = verdict(tmp_path, "    - send: session_request\n      with: {imsi: '001019999999999'}\n"
                     "    - expect: session_start\n")  # fmt: skip
    assert result.verdict in (Verdict.FAIL, Verdict.INCONCLUSIVE)
    assert "protected" not in (result.reason or "")


@pytest.mark.parametrize("check", ["protected: true", 'data: "one"'])
def test_a_downlink_mac_that_does_not_verify_names_the_vectors(tmp_path, check):
    steps = ECHO + f"      check: {{{check}}}\n"
    result = verdict(tmp_path, steps, faults=frozenset({"mac_not_verified"}), binding=MISREAD)
    assert result.verdict is Verdict.FAIL
    assert "does not verify under the UE's keys" in str(result.observed)
    assert "best-conformance vectors" in str(result.observed)
