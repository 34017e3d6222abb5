"""Running against an embedded reference SUT: start it on free ports, point a profile at it, share its CA.
An EMSE needs the harness's EMKS first, a UE the harness's HSE (its Session Request goes there); the yielded
profile carries them (`peers`), and for the UE its triggers too."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conformance.engine.peers import Peers, harness_peers
from conformance.keyserver.certs import CertificateDirectory
from conformance.profile import LoadedProfile, load_profile
from conformance.reference.services import (
    ReferenceEmksService,
    ReferenceEmseService,
    ReferenceHseService,
    ReferenceUeService,
)

if TYPE_CHECKING:
    from conformance.fuzz.campaign import Sut


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
        data["pixit"]["timing"] = "measured"  # it answers on this host: wait as long as its round trips ask
        peers = None
        reference: Any = None  # the running service, whatever its kind
        if profile.sut.kind == "hse":
            service = stack.enter_context(ReferenceHseService(load_profile(data), udp_port=0, rest_port=0, certs=certs))
            data.setdefault("endpoints", {})["hse"] = {"host": service.hse.address[0], "port": service.hse.address[1]}
            data["endpoints"]["key_server"] = service.keyserver.url
            reference = service
        elif profile.sut.kind == "emks":
            service = stack.enter_context(ReferenceEmksService(load_profile(data), rest_port=0, certs=certs))
            data.setdefault("endpoints", {})["key_server"] = service.keyserver.url
            peers = Peers(None, {"provision": service.provision})
            reference = service
        elif profile.sut.kind == "ue":  # a UE sends its Session Request to the harness's HSE, which must be up first
            data.setdefault("endpoints", {})["hse"] = {"host": "127.0.0.1", "port": 0}
            peers = stack.enter_context(harness_peers(load_profile(data), certs))
            assert peers.hse is not None
            host, port = peers.hse.address
            data["endpoints"]["hse"] = {"host": host, "port": port}
            ue = stack.enter_context(ReferenceUeService(load_profile(data), hse=(host, port)))
            peers.triggers = dict(ue.triggers)
            reference = ue
        else:  # an EMSE registers with the harness's EMKS, which must be up first
            data.setdefault("endpoints", {})["key_server"] = "https://127.0.0.1:0"
            peers = stack.enter_context(harness_peers(load_profile(data), certs))
            assert peers.emks is not None
            emse = stack.enter_context(
                ReferenceEmseService(load_profile(data), peers.emks.url, dtls_port=0, certs=certs)
            )
            data["endpoints"]["key_server"] = peers.emks.url
            data["endpoints"]["emse"] = {"host": emse.address[0], "port": emse.address[1]}
            peers.triggers = {"register": emse.emse.register, "deregister": emse.emse.deregister}
            reference = emse
        data["reference"]["faults"] = []  # the harness's copy describes the SUT, not how to break it
        embedded = load_profile(data)
        embedded.peers = peers
        embedded.died_at = lambda: reference.died_at  # the selftest's: which cases ran against a dead SUT
        yield embedded, certs


@contextlib.contextmanager
def restartable_reference(profile: LoadedProfile, faults: frozenset[str]) -> Iterator[Sut]:
    """The reference SUT the profile describes, embedded, restartable after a crash (a fuzz campaign's SUT: so a
    crash shrinks like any finding); its deaths and its 500s' tracebacks are the campaign's findings, not console
    noise."""
    import logging

    from conformance.fuzz.campaign import Sut
    from conformance.reference.death import DEATH_LOGGER

    quiet = logging.NullHandler()  # without a handler of its own, a logger that does not propagate prints anyway
    loggers = [logging.getLogger(DEATH_LOGGER), logging.getLogger("uvicorn.error")]  # a crash, a 500's traceback
    propagating = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.propagate = False
        logger.addHandler(quiet)
    stack = contextlib.ExitStack()
    with tempfile.TemporaryDirectory() as folder:
        certs = CertificateDirectory(Path(folder) / "certs")

        def start() -> LoadedProfile:
            nonlocal stack
            stack.close()
            stack = contextlib.ExitStack()
            running, _ = stack.enter_context(embedded_reference(profile, faults, certs=certs))
            return running

        try:
            yield Sut(start(), restart=start, certs=certs, reference=True)
        finally:
            stack.close()
            for logger, propagate in zip(loggers, propagating, strict=True):
                logger.propagate = propagate
                logger.removeHandler(quiet)
