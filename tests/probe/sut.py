"""A SUT that reads the binding otherwise: the embedded reference HSE started with binding overrides, the probe's
view of it (the same profile without the overrides: the harness does not know them), and captures of the harness's
UE role speaking the SUT's binding with it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conformance.capture.tap import PcapTap
from conformance.embedded import embedded_reference
from conformance.profile import LoadedProfile, load_profile, shipped_profile
from conformance.roles.ue import Credentials, Ue

# the overrides of the "real disagreement": one per kind of open point
COUNT_MSB = {"protection.count.align": "msb"}
MAC_LSB = {"protection.mac.take": "lsb"}
KINT_INT_FC = {"keys.derivations.kint_int.fc": 0x15}
RAND_TAG = {"emsdp.tlv.tags.rand": 0x21}
HEADER_ORDER = {"emsdp.header.fields": ["up_cp", "rfu", "key_id", "session_id", "counter"]}
FIVE = {**COUNT_MSB, **MAC_LSB, **KINT_INT_FC, **RAND_TAG, **HEADER_ORDER}


def reference_data(overrides: dict[str, Any]) -> dict[str, Any]:
    data = load_profile(shipped_profile("reference-hse.yaml")).profile.model_dump(mode="json", exclude_none=True)
    data["binding"] = dict(overrides)
    return data


@contextlib.contextmanager
def running_sut(overrides: dict[str, Any]) -> Iterator[tuple[LoadedProfile, LoadedProfile]]:
    """(the running SUT's own profile, with its overrides; the probe's profile of it, without them)."""
    with embedded_reference(load_profile(reference_data(overrides))) as (running, _certs):
        data = running.profile.model_dump(mode="json", exclude_none=True)
        data["binding"] = {}
        yield running, load_profile(data)


def capture_exchange(running: LoadedProfile, pcap: Path, *, subscriber: int = 0, confidential: bool = False) -> Path:
    """A whole exchange in the SUT's own binding: set-up, two echoed messages, Manage Keys the UE asks for,
    Terminate."""
    pixit = running.pixit
    with PcapTap(pcap) as tap:
        ue = Ue(
            running.binding,
            Credentials.from_subscriber(pixit.subscribers[subscriber]),
            running.hse_endpoint,
            snn=pixit.serving_network_name,
            eas_id=pixit.eas_id,
            sn_id=pixit.serving_network_id,
            tap=tap,
        )
        with ue:
            ue.start(confidentiality=confidential)
            for data in (b"one", b"two"):
                ue.send(ue.user_data(data))
                assert ue.check_downlink(ue.expect(None)) == data
            ue.send_protected("manage_keys_request", [])
            ue.answer_manage_keys(ue.expect("manage_keys_request"))
            ue.send_protected("session_terminate_request", [])
            ue.check_downlink(ue.expect("session_terminate_response"))
    return pcap
