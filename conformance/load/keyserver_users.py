"""Locust users of the key-server interfaces: an EMSE towards an EMKS, an EAS towards an HSE's key server (TS
33.163 Annex B), both over mutual TLS with the harness's own client (keyserver.client), every key checked against
the harness's own derivation and reported through outcome.exchange (request type KEYS).

Each task is one client lifecycle: register, fetch keys by UE id and key id, deregister.
- EmseUser: the keys of `fetches` distinct subscribers per task, drawn in turn from `pixit.subscriber_ranges` (the
  listed subscribers with `rands` when there is no range). For each, the runs the EMKS keeps (the range's newest
  `rest.past_keys_kept` rands) are fetched and compared with the e2m_key the harness derives from K, OPc and the
  RAND (engine.expected_keys). The EMKS must hold those runs: the reference provisions a ranged UE on first use;
  a lab provisions its EMKS by the same rule (conformance.subscriber_ranges).
- EasUser: an EAS can only fetch the key of a session that exists, so each task first runs a UE session for the
  user's own subscriber (the harness's UE role, reported as EMSDP "Session for EAS"), fetches that session's
  KInt_EAS_PSK under its key id and compares it with the key the UE derived, then ends the session. Each user has
  a subscriber of its own (never another user's SQN): EAS users take the load slots (settings.slot) from the END of
  the pool (settings.LoadSubscribers), EMSDP users from its start, so that both kinds in one run never share one.

Failure classes (outcome.py): a wrong key, a refused key (4xx), a wrong document or an AUTN the USIM refuses are
VerificationFailure; a 5xx (e.g. 503 of an overloaded key server), a timeout or a refused connection are
TransportFailure. Reasons name no UE, key or session id, so that Locust groups them.

Read from the environment (set by the load runner):
  BEST_LOAD_SETTINGS       the load settings (settings.LoadSettings): the profile and the reply timeout; else
  BEST_LOAD_PROFILE        the SUT profile alone: endpoints.key_server, endpoints.hse, pixit, tls.
  BEST_LOAD_REFERENCE_DIR  (optional) the certificate directory of the served reference SUT (`serve --certs-dir`):
                           its CA is trusted and its client certificates presented. Without it: the profile's tls
                           section (tls.ca, tls.cert/key or tls.clients.<identity>).
  BEST_LOAD_WORKERS        (optional, default 1; LoadSettings.workers if the settings have it) how many processes
                           draw subscribers (settings.slot interleaves them by Locust's worker index), so that no
                           two processes share one.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
from locust import User, constant, task

from conformance.engine.expected_keys import e2m_keys, key_id_for
from conformance.keyserver.certs import CertificateDirectory
from conformance.keyserver.client import KeyServerClient, KeyServerError
from conformance.load.outcome import TransportFailure, VerificationFailure, exchange
from conformance.load.settings import ENVIRONMENT, LoadSettings, LoadSubscribers, slot
from conformance.profile import LoadedProfile, Subscriber, load_profile
from conformance.roles.errors import NoReply, PortUnreachable, ProtocolError
from conformance.roles.ue import Credentials, Ue
from conformance.subscriber_ranges import nth, total

SETTINGS_ENV = ENVIRONMENT
PROFILE_ENV = "BEST_LOAD_PROFILE"
REFERENCE_DIR_ENV = "BEST_LOAD_REFERENCE_DIR"
WORKERS_ENV = "BEST_LOAD_WORKERS"
KIND = "KEYS"


@functools.cache
def target() -> tuple[LoadedProfile, float]:
    """(the profile, the reply timeout) of BEST_LOAD_SETTINGS or BEST_LOAD_PROFILE, read once per process."""
    if os.environ.get(SETTINGS_ENV):
        settings = LoadSettings.from_environment()
        profile = load_profile(settings.profile)
        return profile, settings.reply_timeout or profile.pixit.reply_timeout
    path = os.environ.get(PROFILE_ENV)
    if not path:
        raise RuntimeError(f"neither {SETTINGS_ENV} nor {PROFILE_ENV} is set: the load runner sets them")
    profile = load_profile(path)
    return profile, profile.pixit.reply_timeout


def client_material(profile: LoadedProfile, identity: str) -> tuple[Path, Path | None, Path | None]:
    """(CA to trust, client certificate, key) for `identity`, from where BEST_LOAD_REFERENCE_DIR or the profile says
    (module docstring)."""
    tls = profile.tls
    directory = os.environ.get(REFERENCE_DIR_ENV)
    if directory:
        certs = CertificateDirectory(directory)
        pair = certs.client(identity)
        return certs.ca, pair.cert, pair.key
    if tls.ca is None:
        raise RuntimeError(f"no CA to trust: give the profile's tls.ca, or {REFERENCE_DIR_ENV} for a served reference")
    if identity in tls.clients:
        return tls.ca, tls.clients[identity].cert, tls.clients[identity].key
    return tls.ca, tls.cert, tls.key


def key_client(profile: LoadedProfile, identity: str, timeout: float) -> KeyServerClient:
    url = profile.endpoints.key_server
    if not url:
        raise RuntimeError("the profile names no key server (endpoints.key_server)")
    ca, cert, key = client_material(profile, identity)
    return KeyServerClient(url, profile.binding, ca=ca, cert=cert, key=key, timeout=timeout)


@functools.cache
def processes() -> int:
    """How many processes draw subscribers (module docstring)."""
    settings = LoadSettings.from_environment() if os.environ.get(SETTINGS_ENV) else None
    return getattr(settings, "workers", None) or int(os.environ.get(WORKERS_ENV, "1"))


def worker_slot(environment: Any) -> tuple[int, int]:
    """(this process's worker index, the number of processes drawing subscribers)."""
    workers = processes()
    index = getattr(environment.runner, "worker_index", 0) or 0
    if not 0 <= index < workers:
        raise RuntimeError(f"worker {index} of {WORKERS_ENV}={workers}: set it to the number of workers")
    return index, workers


def keyed_subscribers(profile: LoadedProfile) -> tuple[int, Any]:
    """(how many, subscriber by index) of the subscribers an EMKS holds keys of: the ranges' (each with the
    range's rands), else the listed ones with `rands`."""
    ranges = profile.pixit.subscriber_ranges
    if ranges:
        return total(ranges), lambda index: nth(ranges, index)
    listed = [s for s in profile.pixit.subscribers if s.rands]
    return len(listed), listed.__getitem__


_FETCHED = itertools.count()  # per process: the UEs whose keys EMSE users fetch, in turn
_EAS_USERS = itertools.count()  # per process: the EAS users started


def draw(environment: Any, size: int) -> int:
    """The next UE an EMSE user asks for (worker slots interleaved), wrapping round the pool: reads share nothing."""
    worker, workers = worker_slot(environment)
    return slot(next(_FETCHED), worker, workers) % size


def checked(name: str, call: Any) -> Any:
    """`call()`, its key-server errors as Locust failures of the right class."""
    try:
        return call()
    except KeyServerError as exc:
        if 200 <= exc.status < 300:  # an allowed status: the document is what is wrong
            raise VerificationFailure(f"{name}: HTTP {exc.status} with a wrong document (UE, key id or body)") from None
        failure = TransportFailure if exc.status >= 500 else VerificationFailure
        raise failure(f"{name}: HTTP {exc.status}, not an answer the binding allows") from None
    except httpx.TimeoutException:
        raise TransportFailure(f"{name}: no answer in time") from None
    except (httpx.TransportError, OSError) as exc:
        raise TransportFailure(f"{name}: {type(exc).__name__}") from None


class KeyServerUser(User):
    """Common to both: one client (one TLS connection, kept) for the user's identity."""

    abstract = True
    wait_time = constant(0)
    identity_field = ""  # pixit.emse_id or pixit.eas_id

    def on_start(self) -> None:
        self.profile, self.timeout = target()
        self.identity = getattr(self.profile.pixit, self.identity_field)
        self.client = key_client(self.profile, self.identity, self.timeout)

    def on_stop(self) -> None:
        self.client.close()

    def register(self) -> str:
        with exchange(self.environment, KIND, "Register"):
            return checked("Register", lambda: self.client.register(self.identity))

    def registered(self, fetch_all: Callable[[str], None]) -> None:
        """Register, `fetch_all(session id)`, deregister: after a wrong key too, as a client would."""
        session = self.register()
        try:
            fetch_all(session)
        finally:
            self.deregister(session)

    def fetch(self, session: str, ue_id: str, key_id: bytes, expected: bytes, what: str) -> None:
        with exchange(self.environment, KIND, "Fetch key") as info:
            key = checked("Fetch key", lambda: self.client.fetch_key(session, ue_id, key_id))
            info["length"] = len(key)
            if key != expected:
                raise VerificationFailure(f"Fetch key: the key answered is not {what}")

    def deregister(self, session: str) -> None:
        with exchange(self.environment, KIND, "Deregister"):
            checked("Deregister", lambda: self.client.deregister(session))


class EmseUser(KeyServerUser):
    """An EMSE towards an EMKS (TR 33.863 Sol. #10): register, the kept keys of `fetches` UEs, deregister."""

    abstract = False
    identity_field = "emse_id"
    fetches = 3  # UEs per registration

    def on_start(self) -> None:
        super().on_start()
        self.size, self.subscriber = keyed_subscribers(self.profile)
        if not self.size:
            raise RuntimeError("no subscriber with AKA runs to fetch: give pixit.subscriber_ranges with rands")
        self.derivation = SimpleNamespace(binding=self.profile.binding)  # what expected_keys reads

    @task
    def lifecycle(self) -> None:
        with contextlib.suppress(VerificationFailure, TransportFailure):  # reported by exchange; next task afresh
            self.registered(self.fetch_keys)

    def fetch_keys(self, session: str) -> None:
        for _ in range(self.fetches):
            subscriber: Subscriber = self.subscriber(draw(self.environment, self.size))
            for rand in subscriber.rands[-self.profile.binding["rest.past_keys_kept"] :]:
                keys = e2m_keys(self.derivation, rand, self.identity, subscriber=subscriber)
                self.fetch(session, subscriber.imsi, keys["key_id"], keys["e2m_key"], "the e2m_key derived")


class EasUser(KeyServerUser):
    """An EAS towards an HSE's key server (TS 33.163 Annex B): a UE session for its own subscriber, then register,
    fetch that session's KInt_EAS_PSK by UE id and key id, deregister; the session then ends."""

    abstract = False
    identity_field = "eas_id"

    def on_start(self) -> None:
        super().on_start()
        pool = LoadSubscribers(self.profile)
        worker, workers = worker_slot(self.environment)
        own = pool.at(pool.count - 1 - slot(next(_EAS_USERS), worker, workers))  # from the end: module docstring
        pixit = self.profile.pixit
        self.ue = Ue(
            self.profile.binding,
            Credentials.from_subscriber(own),
            self.profile.hse_endpoint,
            snn=pixit.serving_network_name,
            sn_id=pixit.serving_network_id,
            eas_id=self.identity,
            timeout=self.timeout,
        )
        self.derivation = SimpleNamespace(binding=self.profile.binding)

    def on_stop(self) -> None:
        self.ue.close()
        super().on_stop()

    @task
    def lifecycle(self) -> None:
        try:
            ue_session = self.session()
            key_id = key_id_for(self.derivation, ue_session.rand, ue_session.keys)
            expected = ue_session.keys["kint_eas_psk"]
            imsi = self.ue.credentials.imsi
            self.registered(lambda session: self.fetch(session, imsi, key_id, expected, "the UE's KInt_EAS_PSK"))
            self.terminate()
        except (VerificationFailure, TransportFailure):
            self.ue.session = None  # the next task starts a new session

    def session(self) -> Any:
        with exchange(self.environment, "EMSDP", "Session for EAS"):
            try:
                return self.ue.start()
            except (NoReply, PortUnreachable) as exc:
                raise TransportFailure(f"Session for EAS: {type(exc).__name__}") from None
            except ProtocolError as exc:
                raise VerificationFailure(f"Session for EAS: {str(exc).split(':')[0]}") from None

    def terminate(self) -> None:
        with exchange(self.environment, "EMSDP", "Terminate for EAS"):
            try:
                self.ue.send_protected("session_terminate_request", [])
                self.ue.expect("session_terminate_response")
            except (NoReply, PortUnreachable) as exc:
                raise TransportFailure(f"Terminate for EAS: {type(exc).__name__}") from None
            except ProtocolError as exc:
                raise VerificationFailure(f"Terminate for EAS: {str(exc).split(':')[0]}") from None
            finally:
                self.ue.session = None
