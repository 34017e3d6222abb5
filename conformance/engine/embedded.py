"""Running against an embedded reference SUT: start it on free ports, point a profile at it, share its CA."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conformance.keyserver.certs import CertificateDirectory
from conformance.profile import LoadedProfile, load_profile
from conformance.reference.services import ReferenceEmksService, ReferenceHseService


@contextlib.contextmanager
def embedded_reference(
    profile: LoadedProfile, faults: frozenset[str] = frozenset(), *, certs: CertificateDirectory | None = None
) -> Iterator[tuple[LoadedProfile, CertificateDirectory]]:
    """The reference SUT the profile describes, running; yields (the profile pointed at it, its certificates).

    Certificates live in a fresh temporary directory unless given: the harness is both sides, so it trusts
    the CA it made.
    """
    with contextlib.ExitStack() as stack:
        if certs is None:
            certs = CertificateDirectory(Path(stack.enter_context(tempfile.TemporaryDirectory())) / "certs")
        data: dict[str, Any] = profile.profile.model_dump(mode="json", exclude_none=True)
        data["reference"]["faults"] = sorted(set(data["reference"].get("faults", [])) | faults)
        if profile.sut.kind == "hse":
            service = stack.enter_context(ReferenceHseService(load_profile(data), udp_port=0, rest_port=0, certs=certs))
            data.setdefault("endpoints", {})["hse"] = {"host": service.hse.address[0], "port": service.hse.address[1]}
        else:
            service = stack.enter_context(ReferenceEmksService(load_profile(data), rest_port=0, certs=certs))
        data.setdefault("endpoints", {})["key_server"] = service.keyserver.url
        data["reference"]["faults"] = []  # the harness's copy describes the SUT, not how to break it
        yield load_profile(data), certs
