"""What the harness runs beside the SUT for a whole run, and the SUT's own triggers.

An EMSE under test registers once, on its own initiative, with the EMKS it was configured with: that EMKS is
the harness's (`HarnessEmks`), it must be up before the SUT starts, and it lives as long as the run so that
every case sees the same registration. Triggers make the SUT register or deregister when a case needs it:
shell commands from the PIXIT for a vendor's SUT, methods of the embedded reference.

A UE under test sends its Session Request to the HSE it was configured with: that HSE is the harness's
(`HarnessHse`), bound at `endpoints.hse` (port 0: a free one, `hse.address` says which) before the UE starts, and
it lives as long as the run; the triggers make the UE start a session, send data, ask for new keys or terminate.
"""

from __future__ import annotations

import contextlib
import shlex
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from conformance.keyserver.certs import CertificateDirectory
from conformance.keyserver.store import EmksStore
from conformance.profile import LoadedProfile
from conformance.roles.emks import HarnessEmks
from conformance.roles.hse import HarnessHse


class TriggerFailed(RuntimeError):
    """A PIXIT trigger command failed or took too long."""


@dataclass
class Peers:
    emks: HarnessEmks | None = None
    triggers: dict[str, Callable[..., None]] = field(default_factory=dict)
    hse: HarnessHse | None = None  # towards a UE under test


def shell_trigger(command: str, timeout: float) -> Callable[..., None]:
    """The PIXIT's command as a trigger; named values (e.g. {rand}) are filled in, shell-quoted."""

    def run(**values: str) -> None:
        filled = command.format(**{name: shlex.quote(value) for name, value in values.items()}) if values else command
        try:
            done = subprocess.run(filled, shell=True, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TriggerFailed(f"trigger {shlex.quote(command)} ran over {timeout}s") from None
        if done.returncode:
            raise TriggerFailed(f"trigger {shlex.quote(command)} exited {done.returncode}: {done.stderr.strip()[:300]}")

    return run


def harness_hse_address(profile: LoadedProfile) -> tuple[str, int]:
    """Where the harness's HSE binds towards a UE under test: endpoints.hse, whose port 0 is a free one (not the
    binding's default port, as for an HSE under test)."""
    given = profile.endpoints.hse
    return (given.host, 0) if given is not None and given.port == 0 else profile.hse_endpoint


@contextlib.contextmanager
def harness_peers(profile: LoadedProfile, certs: CertificateDirectory | None = None) -> Iterator[Peers]:
    """The peers a run needs for this SUT kind: for an EMSE the harness's EMKS, listening where
    `endpoints.key_server` says (free port if none) with the profile's `tls` files, else with `certs`; for a UE
    the harness's HSE, bound at `endpoints.hse`. None for an HSE or an EMKS."""
    triggers = {
        name: shell_trigger(command, profile.pixit.registration_timeout)
        for name, command in profile.pixit.triggers.items()
    }
    if profile.sut.kind == "ue":
        with HarnessHse(profile.binding, profile.pixit, profile.pics, harness_hse_address(profile)) as hse:
            yield Peers(None, triggers, hse)
        return
    if profile.sut.kind != "emse":
        yield Peers(None, triggers)
        return
    tls = profile.tls
    if tls.ca and tls.cert and tls.key:
        ca, cert, key = Path(tls.ca), Path(tls.cert), Path(tls.key)
    else:
        certs = certs or CertificateDirectory(name=f"reference-{profile.sut.kind}")  # as `serve emse` uses
        server = certs.server()
        ca, cert, key = certs.ca, server.cert, server.key
    parts = urlsplit(profile.endpoints.key_server or "https://127.0.0.1:0")
    emks = HarnessEmks(
        profile.binding,
        EmksStore(profile.binding).provision_subscribers(profile.pixit.subscribers),
        ca=ca,
        cert=cert,
        key=key,
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 0,
    )
    with emks:
        yield Peers(emks, triggers)
