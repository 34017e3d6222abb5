"""The reference SUTs as whole services: the HSE (EMSDP over UDP and its EAS-facing key server over HTTPS),
the EMKS (key server only), the EMSE (key client and DTLS-PSK server), with certificates generated on first
use, and the UE (an EMSDP client of the harness's HSE, no certificates).

Certificates live in the user's cache directory (one CA per reference SUT), never in the repository; the
harness's roles take their client certificates from the same directory, so both ends trust each other.

Dead faults (faults.Fault.dead) make a service die: `died_at` is the moment (epoch s, also logged by
`faults.log_death`), None while it lives. An exit (hse_exits_on_malformed) calls `on_exit`: embedded, it closes
the UDP socket and the key server as an exiting process would; `serve` replaces it with a real exit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from conformance.faults import CATALOGUE, parse_faults
from conformance.keyserver.app import create_app
from conformance.keyserver.certs import CertificateDirectory
from conformance.keyserver.client import client_ssl_context
from conformance.keyserver.server import KeyServer, server_ssl_context
from conformance.keyserver.store import EmksStore
from conformance.profile import LoadedProfile
from conformance.reference.death import log_death
from conformance.reference.hse import HseServer
from conformance.reference.ue import UeClient
from conformance.subscriber_ranges import find


def _split(faults: frozenset[str]) -> tuple[frozenset[str], frozenset[str]]:
    keyserver = {f.name for f in CATALOGUE if f.component == "keyserver"}
    return faults - keyserver, faults & keyserver


def key_server_port(profile: LoadedProfile, port: int | None) -> int:
    """The port to serve the key server on: the one asked, else the profile's key_server URL's, else free."""
    if port is not None:
        return port
    url = profile.endpoints.key_server
    return (urlsplit(url).port or 443) if url else 0


CLOSES = "keyserver_closes_connections"


def _key_server_dead(sut: str, faults: frozenset[str]) -> float | None:
    """A key server with fault keyserver_closes_connections is dead from its start: log it, give the moment."""
    if CLOSES not in faults:
        return None
    return log_death(f"{sut} key server", CLOSES, "every TLS connection is closed at once, before any answer")


def certificates(profile: LoadedProfile) -> CertificateDirectory:
    return CertificateDirectory(name=f"reference-{profile.sut.kind}")


class ReferenceHseService:
    """The reference HSE: UDP for the UE, HTTPS with mutual TLS for the EAS; a new EAS key is pushed to every
    subscribed EAS as soon as the HSE publishes it."""

    def __init__(
        self,
        profile: LoadedProfile,
        faults: frozenset[str] = frozenset(),
        *,
        udp_port: int | None = None,
        rest_port: int | None = None,
        certs: CertificateDirectory | None = None,
    ):
        chosen = faults | parse_faults(profile.reference.faults)
        hse_faults, keyserver_faults = _split(chosen)
        self.certs = certs or certificates(profile)
        self.hse = HseServer(profile, hse_faults, port=udp_port)
        if "past_keys_not_kept" in keyserver_faults:  # the HSE's key store is the key server's store
            self.hse.protocol.eas_keys.keep = 1
        binding = profile.binding
        push = self.certs.client("reference-hse")
        self.app = create_app(
            binding,
            self.hse.protocol.eas_keys,
            faults=keyserver_faults,
            push_ssl=client_ssl_context(binding, ca=self.certs.ca, cert=push.cert, key=push.key),
        )
        server = self.certs.server()
        context = server_ssl_context(
            binding, ca=self.certs.ca, cert=server.cert, key=server.key, faults=keyserver_faults
        )
        self.keyserver = KeyServer(
            self.app,
            context,
            host=profile.hse_endpoint[0],
            port=key_server_port(profile, rest_port),
        )
        self._keyserver_faults = keyserver_faults
        state = self.app.state.keyserver
        self.hse.protocol.key_published = lambda eas_id, ue_id: self._publish(state, ue_id)
        self.died_at: float | None = None
        self.on_exit: Callable[[], None] = self._exit_embedded  # `serve`: the process exits
        self.hse.protocol.on_death = self._died

    def _publish(self, state: Any, ue_id: str) -> None:
        if not self.hse.protocol.dead:  # a dead HSE pushes nothing
            self.keyserver.submit(state.notify_all(ue_id))

    def _died(self, fault: str) -> None:
        self.died_at = self.died_at or self.hse.protocol.died_at
        if fault == "hse_hangs_after_setup":
            self.keyserver.hang()
        elif fault == "hse_crashes_on_empty_ue_config":
            pass  # the EMSDP handler crashed: the UDP endpoint answers nothing more, the key server goes on
        else:
            self.on_exit()

    def _exit_embedded(self) -> None:
        """What an exit leaves: the UDP socket is closed already; the key server goes too."""
        self.keyserver.kill()

    def __enter__(self) -> ReferenceHseService:
        self.keyserver.start()
        self.died_at = _key_server_dead("reference HSE", self._keyserver_faults)
        try:
            self.hse.__enter__()
        except OSError as exc:  # the UDP port: say which, and leave nothing running
            self.keyserver.stop()
            host, port = self.hse.bind_address
            raise OSError(exc.errno, f"UDP {host}:{port}: {exc.strerror}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        self.hse.close()
        self.keyserver.stop()


class ReferenceEmksService:
    """The reference EMKS: the key server with e2m_int_keys provisioned from the profile's subscribers
    (one per RAND listed, oldest first), as the HSS would push them (seed 002); a ranged subscriber's on the
    first request for its UE id."""

    def __init__(
        self,
        profile: LoadedProfile,
        faults: frozenset[str] = frozenset(),
        *,
        rest_port: int | None = None,
        certs: CertificateDirectory | None = None,
    ):
        keyserver_faults = _split(faults | parse_faults(profile.reference.faults))[1]
        self.profile = profile
        self.certs = certs or certificates(profile)
        binding = profile.binding
        ranges = profile.pixit.subscriber_ranges
        self.store = (
            EmksStore(binding, faults=keyserver_faults)
            .provision_subscribers(profile.pixit.subscribers)
            .provision_lazily(lambda ue_id: find(ranges, ue_id))
        )
        push = self.certs.client("reference-emks")
        self.app = create_app(
            binding,
            self.store,
            faults=keyserver_faults,
            push_ssl=client_ssl_context(binding, ca=self.certs.ca, cert=push.cert, key=push.key),
        )
        server = self.certs.server()
        context = server_ssl_context(
            binding, ca=self.certs.ca, cert=server.cert, key=server.key, faults=keyserver_faults
        )
        host = urlsplit(profile.endpoints.key_server or "https://127.0.0.1").hostname or "127.0.0.1"
        self.keyserver = KeyServer(
            self.app,
            context,
            host=host,
            port=key_server_port(profile, rest_port),
        )
        self._keyserver_faults = keyserver_faults
        self.died_at: float | None = None

    def __enter__(self) -> ReferenceEmksService:
        self.keyserver.start()
        self.died_at = _key_server_dead("reference EMKS", self._keyserver_faults)
        return self

    def provision(self, ue_id: str, rand: str, **_derived: str) -> None:
        """The provisioning hook: take a new AKA run of a PIXIT subscriber (its RAND, in hex), as the HSS would
        push its e2m_int_key, then push the new key to every subscribed client."""
        pixit = self.profile.pixit
        subscriber = next((s for s in pixit.subscribers if s.imsi == ue_id), None) or find(
            pixit.subscriber_ranges, ue_id
        )
        if subscriber is None:
            raise ValueError(f"no PIXIT subscriber {ue_id}")
        self.store.provision_subscriber(subscriber, bytes.fromhex(rand))
        self.keyserver.run_coroutine(self.app.state.keyserver.notify_all(ue_id))

    def __exit__(self, *exc: object) -> None:
        self.keyserver.stop()


class ReferenceEmseService:
    """The reference EMSE, registered with the EMKS at `key_server_url` (client certificate for pixit.emse_id
    from `certs`, trusting `certs.ca`), serving DTLS-PSK on the profile's EMSE endpoint (or `dtls_port`).
    `register` / `deregister` are its lifecycle triggers."""

    def __init__(
        self,
        profile: LoadedProfile,
        key_server_url: str,
        faults: frozenset[str] = frozenset(),
        *,
        dtls_port: int | None = None,
        certs: CertificateDirectory | None = None,
    ):
        from conformance.reference.emse import ReferenceEmse

        self.certs = certs or certificates(profile)
        own = self.certs.client(profile.pixit.emse_id)
        host, port = profile.emse_endpoint
        self.emse = ReferenceEmse(
            profile.binding,
            profile.pixit.emse_id,
            key_server_url,
            ca=self.certs.ca,
            cert=own.cert,
            key=own.key,
            faults=faults | parse_faults(profile.reference.faults, "emse"),
            host=host,
            port=port if dtls_port is None else dtls_port,
        )
        self.address = self.emse.address
        self.died_at: float | None = None

    def __enter__(self) -> ReferenceEmseService:
        self.emse.start()
        self.died_at = self.emse.died_at
        self.emse.register()
        return self

    def __exit__(self, *exc: object) -> None:
        self.emse.close()


class ReferenceUeService:
    """The reference UE, a client of the HSE at `hse` (default: the profile's endpoints.hse, where the harness's
    HSE listens) from UDP `port` (default: a free one). `triggers` are its PIXIT triggers, as callables."""

    def __init__(
        self,
        profile: LoadedProfile,
        faults: frozenset[str] = frozenset(),
        *,
        hse: tuple[str, int] | None = None,
        port: int | None = None,
    ):
        chosen = parse_faults(faults, "ue") | parse_faults(profile.reference.faults, "ue")
        self.client = UeClient(profile, hse, chosen, port=port)
        self.triggers = self.client.triggers

    @property
    def address(self) -> tuple[str, int] | None:
        """Where the UE's socket is bound, once started."""
        return self.client.address

    @property
    def hse(self) -> tuple[str, int]:
        return self.client.hse

    @property
    def died_at(self) -> float | None:
        return self.client.died_at

    def start(self) -> ReferenceUeService:
        try:
            self.client.__enter__()
        except OSError as exc:  # its own UDP port: say which
            host, port = self.client.bind_address
            self.client.close()
            raise OSError(exc.errno, f"UDP {host}:{port}: {exc.strerror}") from None
        return self

    def stop(self) -> None:
        self.client.close()

    def __enter__(self) -> ReferenceUeService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
