"""What one case runs with: the SUT profile, the roles it plays (created on first use), and the capture tap
that records every datagram of the case into its own pcap. Towards a UE under test the harness plays the HSE,
which lives for the whole run (`Peers.hse`): the case taps it into its pcap for as long as the case runs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from conformance.capture.tap import PcapTap
from conformance.emsdp.codec import Codec
from conformance.emsdp.fast import Message
from conformance.emsdp.trace import decode_trace
from conformance.engine.results import Inconclusive, NotApplicable, NotRun
from conformance.keyserver.certs import (
    SERVER_HOSTS,
    CertificateDirectory,
    foreign_certificates,
    harness_certificates,
)
from conformance.masking import leaves, profile_secrets, provisioned_secrets
from conformance.profile import LoadedProfile
from conformance.roles.emks import Exchange, client_exchange, route_patterns
from conformance.roles.hse import HarnessHse
from conformance.roles.key_client import KeyClient, ReceiverTls
from conformance.roles.timing import Timing
from conformance.roles.ue import Credentials, Ue, annotate_trace

__all__ = ["Context", "NotApplicable", "NotRun"]

KEY_SERVER_TIMEOUT = 2.0  # seconds, at least, for an HTTPS exchange with a key server (TLS set-up included)


class Context:
    def __init__(self, profile: LoadedProfile, pcap: Path, *, certs: CertificateDirectory | None = None):
        self.profile = profile
        self.binding = profile.binding
        self.codec = Codec(self.binding)
        self.layout = self.codec.layout
        pixit = profile.pixit
        self.timeout = pixit.reply_timeout
        measured = pixit.timing == "measured"
        self.timing = Timing(profile.hse_endpoint, self.timeout, pixit.silence_window, measured)  # EMSDP
        url = httpx.URL(profile.endpoints.key_server or "https://127.0.0.1:0")
        self.key_server_timing = Timing(  # the key server's answers, and what it pushes or makes available
            ("https", url.host, url.port), max(self.timeout, KEY_SERVER_TIMEOUT), measured=measured
        )
        self.dtls_timing = Timing(("dtls", *profile.emse_endpoint), self.timeout + 1.0, measured=measured)  # handshakes
        self.tap = PcapTap(pcap)
        self.pcap = pcap
        self.certs = certs  # the SUT's CA and client certificates, when the harness made them (embedded SUT)
        self.ues: dict[str, Ue] = {}
        self.key_clients: dict[str, KeyClient] = {}
        self.last: dict[str, Message | None] = {}  # the last message each UE received
        self.saved: dict[str, Any] = {}
        self.started = time.time()
        self.peers = profile.peers  # the harness's EMKS and the SUT's triggers, for an EMSE under test
        self.key_log: list[str] = []  # NSS key-log lines of the DTLS sessions the harness's UEs completed
        self.cleanups: list[Any] = []  # undo what a case changed in run-wide peers (e.g. a rogue certificate)
        self.client_exchanges: list[Exchange] = []  # what the harness asked a key server under test, as a client
        self._hse = self.peers.hse if profile.sut.kind == "ue" and self.peers is not None else None
        self._hse_before: set[int] = set()  # the run's HSE sessions older than this case: not its secrets
        if self._hse is not None:
            self._hse.attach(self.tap)
            self._hse_before = {id(session) for session in self._hse.sessions.values()}

    def held_secrets(self) -> set[bytes]:
        """The keys this context holds, so that outputs can mask them: the profile's, each UE's K/OPc and session
        keys, every key the steps saved for later ones (next_keys, old_key, the keys each client fetched), and the
        keys of every provisioned AKA run (DTLS PSKs among them)."""
        book = profile_secrets(self.profile)
        for ue in self.ues.values():
            book.update([ue.credentials.k, ue.credentials.opc])
            if ue.session is not None:
                book.update(leaves(ue.session.keys))
        book.add_named(self.saved)
        if self._hse is not None:
            for session in self._hse.sessions.values():  # the case's own: a run's would grow every mask
                if id(session) not in self._hse_before:
                    book.update([*leaves(session.keys), *leaves(session.next_keys)])
        identities = {self.profile.pixit.emse_id, self.profile.pixit.eas_id}
        identities |= {str(k).split("/")[0] for k in self.key_clients}
        identities |= {k.removeprefix("key_client.session.") for k in self.saved if k.startswith("key_client.session.")}
        book.update(provisioned_secrets(self.profile, frozenset(i for i in identities if i)))
        return book.values

    # ---- roles -------------------------------------------------------------------------------------

    def ue(self, name: str = "ue", subscriber: int = 0, *, sqn_offset: int = 0, sqn_from: bytes = b"") -> Ue:
        """The named UE, made on first use for PIXIT subscriber `subscriber`. sqn_offset: its USIM starts that
        many SEQ steps ahead of `sqn_from` (the network's SQN, when known) or of the PIXIT's SQN."""
        if self.profile.sut.kind == "ue":  # the harness is the UE's HSE: no UE of its own talks to an HSE
            raise RuntimeError("a UE under test: the harness plays the HSE (to_ue / from_ue), not a UE")
        if name not in self.ues:
            subscribers = self.profile.pixit.subscribers
            if subscriber >= len(subscribers):
                raise NotRun(
                    f"the case needs test subscriber {subscriber} (pixit.subscribers[{subscriber}]); "
                    f"the profile has {len(subscribers)}"
                )
            credentials = Credentials.from_subscriber(subscribers[subscriber])
            if sqn_offset:  # a USIM ahead of the network, to provoke a resynchronisation
                base = max(int.from_bytes(credentials.sqn, "big"), int.from_bytes(sqn_from or bytes(6), "big"))
                sqn = base + (sqn_offset << self.binding["aka.sqn.ind_bits"])
                credentials = Credentials(credentials.imsi, credentials.k, credentials.opc, sqn.to_bytes(6, "big"))
            self.ues[name] = Ue(
                self.binding,
                credentials,
                self.profile.hse_endpoint,
                snn=self.profile.pixit.serving_network_name,
                sn_id=self.profile.pixit.serving_network_id,
                eas_id=self.profile.pixit.eas_id,
                tap=self.tap,
                timing=self.timing,
            )
        return self.ues[name]

    @property
    def hse(self) -> HarnessHse:
        """The harness's HSE towards a UE under test (the run's, `Peers.hse`)."""
        if self._hse is None:
            raise Inconclusive("the harness's HSE is not running (a UE under test, and the run started its peers?)")
        return self._hse

    @property
    def client_id(self) -> str:
        """The key-server client the harness plays by default: the EMSE (pixit.emse_id) when the SUT is an
        EMKS, else the EAS (pixit.eas_id)."""
        return self.profile.pixit.emse_id if self.profile.sut.kind == "emks" else self.profile.pixit.eas_id

    def key_client(self, identity: str | None = None, *, certificate: str = "own") -> KeyClient:
        """A key-server client (EAS towards an HSE, EMSE towards an EMKS). identity: default `client_id`.
        certificate: own (its identity's), none, foreign (another CA), or the name of another identity whose
        certificate the SUT trusts (see `client_material`)."""
        identity = identity or self.client_id
        key = f"{identity}/{certificate}"
        if key in self.key_clients:
            return self.key_clients[key]
        url = self.profile.endpoints.key_server
        if not url:
            raise NotRun("the profile names no key-server endpoint (endpoints.key_server)")
        ca, cert, key_file = self.client_material(identity, certificate)
        routes = route_patterns(self.binding)
        shown = {"none": None, "own": identity, "foreign": f"{identity} (another CA)"}.get(certificate, certificate)

        def record(response: Any) -> None:
            self.client_exchanges.append(client_exchange(response, routes, shown))

        self.key_clients[key] = KeyClient(
            url,
            self.binding,
            ca=ca,
            cert=cert,
            key=key_file,
            receiver=self._receiver_tls(),
            on_exchange=record,
            on_round_trip=self.key_server_timing.record,
            timeout=self.key_server_timing.reply(),
        )
        return self.key_clients[key]

    def client_material(self, identity: str, certificate: str = "own") -> tuple[Path, Path | None, Path | None]:
        """(CA to trust, client certificate, key) for a key-server client. certificate: own (the identity's),
        none, foreign (from a CA the SUT does not trust, made by the harness), or another identity's. Towards an
        embedded reference the harness made every certificate; towards a lab's SUT they come from the profile's
        `tls` section, and a case needing one it lacks is not run, naming the field."""
        if self.certs is not None:
            ca = self.certs.ca
            if certificate in ("none", "foreign"):
                return ca, *self._unrecognised(identity, certificate)
            pair = self.certs.client(identity if certificate == "own" else certificate)
            return ca, pair.cert, pair.key
        tls = self.profile.tls
        if tls.ca is None:
            raise NotRun("the profile names no CA for the key server's certificate (tls.ca)")
        if certificate in ("none", "foreign"):
            return tls.ca, *self._unrecognised(identity, certificate)
        name = identity if certificate == "own" else certificate
        if name in tls.clients:
            return tls.ca, tls.clients[name].cert, tls.clients[name].key
        if name == self.client_id and tls.cert is not None:
            return tls.ca, tls.cert, tls.key
        field = "tls.cert and tls.key" if name == self.client_id else f"tls.clients.{name}: {{cert, key}}"
        raise NotRun(f"the case presents the client certificate of {name}; the profile gives none ({field})")

    @staticmethod
    def _unrecognised(identity: str, certificate: str) -> tuple[Path | None, Path | None]:
        if certificate == "none":
            return None, None
        pair = foreign_certificates().client(identity)
        return pair.cert, pair.key

    def _receiver_tls(self) -> ReceiverTls:
        """The push receiver's certificate: the embedded SUT's CA issued it, else the profile's
        `tls.receiver`, else the harness's own CA (which the SUT must trust)."""
        where = self.profile.endpoints.notification
        if self.certs is not None:
            server = self.certs.server()
            return ReceiverTls(server.cert, server.key, self.certs.ca, where.host, where.port)
        tls = self.profile.tls
        trusted = (tls.receiver.ca if tls.receiver else None) or tls.ca
        if trusted is None:
            raise NotRun("the profile names no CA for the key server's certificates (tls.ca)")
        if tls.receiver is not None:
            return ReceiverTls(tls.receiver.cert, tls.receiver.key, trusted, where.host, where.port)
        pair = harness_certificates().server(tuple(dict.fromkeys((where.host, *SERVER_HOSTS))))
        return ReceiverTls(pair.cert, pair.key, trusted, where.host, where.port)

    @property
    def keylog_path(self) -> Path:
        """keylogs/<case>.keys beside pcaps/<case>.pcap: Wireshark decrypts the case's DTLS with it."""
        return self.pcap.parent.parent / "keylogs" / f"{self.pcap.stem}.keys"

    def trace(self) -> list[dict[str, Any]]:
        """The decoded exchange of the case in time order: EMSDP messages (or, for an EMSE, DTLS datagrams and
        the key-server requests the SUT made), and the requests the harness made of a key server under test."""
        items = [{"key_request": e.to_dict(), "time": e.time} for e in self.client_exchanges]
        if self.profile.sut.kind != "emse":
            port = self._hse.address[1] if self._hse is not None else self.profile.hse_endpoint[1]
            items += [m.to_dict(self.codec) for m in decode_trace(self.tap.datagrams(port), self.codec)]
            notes = [note for ue in self.ues.values() for note in ue.notes]
            annotate_trace(items, notes + (self._hse.notes if self._hse is not None else []))  # duplicates, stale, late
        else:
            from conformance.dtls.records import dtls_trace

            items += dtls_trace(self.tap.datagrams())
            if self.peers is not None and self.peers.emks is not None:
                since = self.peers.emks.log.since(self.started)
                items += [{"key_server": e.to_dict(), "time": e.time} for e in since]
        return sorted(items, key=lambda item: item.get("time", 0))

    def close(self) -> None:
        for cleanup in reversed(self.cleanups):
            cleanup()
        if self.key_log:
            self.keylog_path.parent.mkdir(parents=True, exist_ok=True)
            self.keylog_path.write_text("".join(line + "\n" for line in self.key_log), encoding="ascii")
        if self._hse is not None:
            self._hse.detach()
        for ue in self.ues.values():
            ue.close()
        for client in self.key_clients.values():
            client.close()
        self.tap.close()
