"""The reference EMSE (TR 33.863 Sol. #10, seed 002): a key-server client over mutual TLS and a DTLS-PSK
server towards UEs.

It registers with the EMKS by POST (6.x.2.2.2.1). When a UE's ClientKeyExchange names a PSK identity
(6.x.2.3 step 4), it GETs that UE's e2m_key by UE identity and key identifier (step 5) and uses it as the PSK
(step 7); no key means the handshake fails. It deregisters by DELETE (6.x.2.2.2.3). Application data is
echoed back, so a UE can see the session carry data. Faults of component `emse` change one behaviour each;
emse_never_answers makes the DTLS endpoint dead (it reads every datagram and answers none).
"""

from __future__ import annotations

import logging
import ssl
import threading
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from conformance.dtls.psk import DtlsPskServer, parse_psk_identity
from conformance.keyserver.client import KeyServerClient, KeyServerError, client_ssl_context
from conformance.reference.death import log_death

logger = logging.getLogger("conformance.emse")
TEXT_XML = {"content-type": "text/xml"}  # fault emse_wrong_content_type


class ReferenceEmse:
    """One EMSE identity. `register()` and `deregister()` are its lifecycle (what a vendor's SUT does on
    start and stop); `start()` serves DTLS on `address`."""

    def __init__(
        self,
        binding: Mapping[str, Any],
        emse_id: str,
        key_server_url: str,
        *,
        ca: Path,
        cert: Path,
        key: Path,
        faults: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        timeout: float = 5.0,
    ):
        self.binding, self.emse_id = binding, emse_id
        self.faults = frozenset(faults)
        context = client_ssl_context(
            binding, ca=ca, **({} if "emse_no_client_cert" in self.faults else {"cert": cert, "key": key})
        )
        if "emse_server_cert_not_checked" in self.faults:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if "emse_no_tls12" in self.faults:
            context.minimum_version = ssl.TLSVersion.TLSv1_3
        if "emse_no_tls13" in self.faults:
            context.maximum_version = ssl.TLSVersion.TLSv1_2
        if "emse_old_tls" in self.faults:
            with warnings.catch_warnings():  # the ssl module deprecates the very version this fault uses
                warnings.simplefilter("ignore", DeprecationWarning)
                context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
        self.client = KeyServerClient(key_server_url, binding, ssl_context=context, timeout=timeout)
        self.session_id: str | None = None
        self._cache: dict[str, bytes] = {}  # UE id -> first key (fault emse_key_cached)
        self._last_key: bytes | None = None
        self._lifecycle = threading.Lock()
        self.died_at: float | None = None  # fault emse_never_answers: dead from the start
        self.server = DtlsPskServer(
            self._psk,
            host=host,
            port=port,
            ciphers=list(binding["dtls.ciphers"]),
            versions=(binding["dtls.min_version"], "DTLSv1.2"),
            on_data=lambda peer, data: data,
            mute="emse_never_answers" in self.faults,
        )
        self.address = self.server.address

    # -- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> None:
        self.server.start()
        if self.server.mute:
            where = f"{self.address[0]}:{self.address[1]}"
            self.died_at = log_death("reference EMSE", "emse_never_answers", f"DTLS on {where} reads and never answers")

    def close(self) -> None:
        self.server.stop()
        self.client.close()

    def register(self) -> None:
        """Register (again): a new session replaces the old one. A refused registration is logged, not
        raised: the EMSE then has no session and refuses handshakes, which is what a tester must see."""
        claimed = f"{self.emse_id}-old" if "emse_registers_wrong_id" in self.faults else self.emse_id
        with self._lifecycle:  # a deregistration asked meanwhile waits for this registration's answer
            try:
                session = self._register(claimed)
            except Exception as exc:  # a TLS refusal or an HTTP error alike
                logger.warning("registration with the EMKS failed: %s", exc)
                return
            self.session_id = session

    def _register(self, claimed: str) -> str:
        if "emse_wrong_content_type" not in self.faults:
            return self.client.register(claimed)
        body = self.client.xml.registration(claimed)
        response = self.client.request("POST", self.client.path("register"), content=body, headers=TEXT_XML)
        if response.status_code not in self.binding["rest.status.registered"]:
            raise KeyServerError("registration refused", response)
        return self.client.xml.parse_registration_answer(response.content)

    def deregister(self) -> None:
        with self._lifecycle:
            if "emse_never_deregisters" in self.faults or self.session_id is None:
                return
            try:
                self.client.deregister(self.session_id)
            except Exception as exc:
                logger.warning("deregistration failed: %s", exc)
            if "emse_uses_deleted_session" not in self.faults:
                self.session_id = None

    # -- the PSK lookup, during the UE's ClientKeyExchange -------------------------------------------------

    def _psk(self, identity: str) -> bytes | None:
        key = self._fetch(identity)
        if key is None and "emse_any_psk_identity" in self.faults:
            return self._last_key
        if key is not None:
            self._last_key = key
        return key

    def _fetch(self, identity: str) -> bytes | None:
        parsed = parse_psk_identity(self.binding, identity)
        if parsed is None:
            logger.info("PSK identity %r is not <UE id, key id>: refused", identity)
            return None
        ue_id, key_id = parsed
        if "emse_key_cached" in self.faults and ue_id in self._cache:
            return self._cache[ue_id]
        with self._lifecycle:  # a registration in flight finishes first
            session = self.session_id
        if session is None:
            logger.info("no EMKS session: handshake of %s refused", ue_id)
            return None
        try:
            key = self.client.fetch_key(session, ue_id, key_id)
        except Exception as exc:
            logger.info("no e2m_key for %s key id %s: %s", ue_id, key_id.hex(), exc)
            return None
        self._cache.setdefault(ue_id, key)
        return key
