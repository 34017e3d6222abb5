"""A reference HSE speaks whatever binding its profile gives it (issue 16, part C).

For every alternative value the default binding names (`Parameter.alternatives`, what `best-conformance probe`
searches), the embedded reference HSE started with that one override passes a few key HSE cases when the harness
uses the same override, and at least one of them does not pass (fail or inconclusive) when the harness stays on
the default binding: a SUT that reads the specifications otherwise cannot be tested until its binding is known,
which is why the probe exists. `serve hse --profile` does the same with a profile file.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.binding import BindingError, load_binding
from conformance.embedded import embedded_reference
from conformance.engine.results import Verdict
from conformance.engine.runner import run_case
from conformance.profile import LoadedProfile, load_profile
from conformance.roles.ue import Credentials, NoReply, Ue
from conformance.selftest import explain, load_cases

ROOT = Path(__file__).resolve().parents[2]
PROFILE_FILE = ROOT / "profiles" / "reference-hse.yaml"
DEFAULT = load_binding()

# The seed 003 numbering of the Session Start TLVs (RAND, AUTN, service parameters after the five Session Request
# TLVs): its values are each another TLV's default, so they load only together.
SEED_003_NUMBERING = {"emsdp.tlv.tags.rand": 0x06, "emsdp.tlv.tags.autn": 0x07, "emsdp.tlv.tags.hse_config": 0x08}

# Per parameter, the cases that show a difference: the Session Request / Start exchange, the protected control
# plane (Manage Keys, under the CP integrity key), the user plane (integrity, confidential), the Start
# Confirmation's RES (only a wrong RES tells: user data is an implied confirmation).
HANDSHAKE = ("HSE-SR-001", "HSE-SS-001")
CASES_BY_KEY = {
    "emsdp.header.fields": (*HANDSHAKE, "HSE-UP-001"),
    "emsdp.tlv.tags.hse_config": HANDSHAKE,
    "emsdp.tlv.tags.rand": HANDSHAKE,
    "emsdp.tlv.tags.autn": HANDSHAKE,
    "emsdp.tlv.tags.res": ("HSE-SR-001", "HSE-SC-002"),
    "protection.mac.take": ("HSE-SR-001", "HSE-UP-001"),
    "protection.mac.covers": ("HSE-SR-001", "HSE-UP-001"),
    "protection.count.align": ("HSE-SR-001", "HSE-UP-001"),
    "keys.derivations.kint_int.fc": ("HSE-SR-001", "HSE-MK-001"),
    "keys.derivations.ke2m_int.fc": ("HSE-SR-001", "HSE-UP-001"),
    "keys.derivations.ke2m_enc.fc": ("HSE-SR-001", "HSE-UP-002"),
}
CASES = {c.id: c for c in load_cases("hse", sorted({i for ids in CASES_BY_KEY.values() for i in ids}))}


def override_of(key: str, value: Any) -> dict[str, Any]:
    """The binding override that puts one alternative in place: itself, or its numbering when it loads only so."""
    try:
        load_binding({key: value})
    except BindingError:
        assert SEED_003_NUMBERING.get(key) == value, f"{key}: alternative {value!r} does not load alone"
        return dict(SEED_003_NUMBERING)
    return {key: value}


ALTERNATIVES = [
    pytest.param(p.key, a.value, id=f"{p.key}={a.value}") for p in DEFAULT.with_alternatives() for a in p.alternatives
]


def profile_data(binding: dict[str, Any]) -> dict[str, Any]:
    data = yaml.safe_load(PROFILE_FILE.read_text(encoding="utf-8"))
    data["binding"] = {**(data.get("binding") or {}), **binding}
    data["pixit"]["silence_window"] = 0.1  # the embedded reference answers at once: keep the failing side short
    return data


def harness_on_default(running: LoadedProfile) -> LoadedProfile:
    """The running reference as a harness on the default binding sees it."""
    data = running.profile.model_dump(mode="json", exclude_none=True)
    data["binding"] = {}
    return load_profile(data)


def test_every_parameter_with_alternatives_has_cases_here():
    assert {p.key for p in DEFAULT.with_alternatives()} == set(CASES_BY_KEY)
    for key, value in SEED_003_NUMBERING.items():  # the set is made of alternatives, and loads as a whole
        assert value in [a.value for a in DEFAULT.param(key).alternatives], key
    assert load_binding(SEED_003_NUMBERING)["emsdp.tlv.tags.rand"] == 0x06


@pytest.mark.parametrize(("key", "value"), ALTERNATIVES)
def test_the_reference_hse_speaks_an_alternative_and_the_default_harness_cannot_test_it(tmp_path, key, value):
    override = override_of(key, value)
    ids = CASES_BY_KEY[key]
    with embedded_reference(load_profile(profile_data(override))) as (running, certs):
        assert all(running.binding[k] == v for k, v in override.items())  # the harness's copy: the same binding
        same = {i: run_case(CASES[i], running, tmp_path, certs=certs) for i in ids}
        default = {i: run_case(CASES[i], harness_on_default(running), tmp_path, certs=certs) for i in ids}
    assert all(r.verdict is Verdict.PASS for r in same.values()), [explain(r) for r in same.values()]
    assert any(r.verdict in (Verdict.FAIL, Verdict.INCONCLUSIVE) for r in default.values()), [
        explain(r) for r in default.values()
    ]


# ---- `serve hse --profile` with a binding override --------------------------------------------------------

EXE = str(Path(sys.executable).with_name("best-conformance"))
PROTECTION = {"protection.count.align": "msb", "protection.mac.take": "lsb", "protection.mac.covers": "body"}


def test_serve_hse_with_a_profile_binding_speaks_it(tmp_path):
    """A UE on the profile's binding gets its user data echoed under it; a UE on the default binding starts a
    session (nothing is protected yet) but its protected user data is discarded."""
    path = tmp_path / "sut.yaml"
    path.write_text(yaml.safe_dump(profile_data(PROTECTION)), encoding="utf-8")
    profile = load_profile(path)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    argv = [EXE, "serve", "hse", "--profile", str(path), "--port", "0", "--rest-port", "0"]
    process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env)
    try:
        banner = next((line for line in process.stderr if line.startswith("reference") and "listening on" in line), "")
        match = re.search(r"UDP ([\d.]+):(\d+);", banner)
        assert match, banner
        address = (match[1], int(match[2]))
        for binding, echoed in ((profile.binding, True), (DEFAULT, False)):
            with Ue(
                binding,
                Credentials.from_subscriber(profile.pixit.subscribers[0]),
                address,
                snn=profile.pixit.serving_network_name,
                eas_id=profile.pixit.eas_id,
                timeout=0.5 if not echoed else 2.0,
            ) as ue:
                assert ue.start().checksum_ok
                ue.send(ue.user_data(b"which binding?"))
                if echoed:
                    assert ue.check_downlink(ue.expect(None)) == b"which binding?"
                else:
                    with pytest.raises(NoReply):
                        ue.expect(None)
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)
