"""Mutual TLS as TS 33.210 / TS 33.163 Annex B ask: client certificates from the trusted CA only, TLS 1.2 or
newer only, and the certificate's identity is the identity a client may register."""

from __future__ import annotations

import ssl

import httpx
import pytest

from conformance.binding.loader import load_binding
from conformance.keyserver.certs import CertificateDirectory
from conformance.keyserver.client import KeyServerClient, client_ssl_context
from tests.keyserver import CLIENT_ID, OTHER_CLIENT_ID, running_keyserver

BINDING = load_binding()
STATUS = BINDING.section("rest.status")


def register_with(ks, context: ssl.SSLContext) -> httpx.Response:
    with KeyServerClient(ks.server.url, BINDING, ssl_context=context) as client:
        return client.request("POST", client.path("register"), content=client.xml.registration(CLIENT_ID))


def still_serving(ks) -> None:
    with ks.client(CLIENT_ID) as client:
        assert client.register(CLIENT_ID)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_1_2_and_1_3_clients_with_a_certificate_are_served(ks, version):
    pair = ks.certs.client(CLIENT_ID)
    context = client_ssl_context(BINDING, ca=ks.certs.ca, cert=pair.cert, key=pair.key)
    context.minimum_version = context.maximum_version = version
    assert register_with(ks, context).status_code == STATUS["registered"][0]


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_client_without_certificate_is_refused(ks, version):
    context = client_ssl_context(BINDING, ca=ks.certs.ca)
    context.maximum_version = version
    # TLS 1.3 finishes the handshake client-side before the server's refusal: httpx then sees a disconnect.
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        register_with(ks, context)
    still_serving(ks)


def test_certificate_from_another_ca_is_refused(ks, tmp_path):
    foreign = CertificateDirectory(tmp_path / "foreign").client(CLIENT_ID)  # same identity, untrusted issuer
    context = client_ssl_context(BINDING, ca=ks.certs.ca, cert=foreign.cert, key=foreign.key)
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        register_with(ks, context)
    still_serving(ks)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
@pytest.mark.parametrize("security_level", ["", ":@SECLEVEL=0"], ids=["openssl-default", "tls1.1-offered"])
def test_tls_1_1_client_is_refused(ks, security_level):
    """OpenSSL 3 at its default security level will not even offer TLS 1.1; at level 0 it sends a TLS 1.1
    ClientHello, which the server (tls.min_version) refuses. Either way no connection may succeed."""
    pair = ks.certs.client(CLIENT_ID)
    context = client_ssl_context(BINDING, ca=ks.certs.ca, cert=pair.cert, key=pair.key)
    context.set_ciphers("DEFAULT" + security_level)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(httpx.TransportError):
        register_with(ks, context)
    still_serving(ks)


def test_certificate_identity_other_than_the_client_id_is_forbidden(ks):
    with ks.client(OTHER_CLIENT_ID) as client:
        response = client.request("POST", client.path("register"), content=client.xml.registration(CLIENT_ID))
    assert response.status_code == STATUS["forbidden"][0]
    assert OTHER_CLIENT_ID in response.text and CLIENT_ID in response.text


def test_server_certificate_is_checked_by_the_client(ks, tmp_path):
    stranger_ca = CertificateDirectory(tmp_path / "stranger").ca
    pair = ks.certs.client(CLIENT_ID)
    context = client_ssl_context(BINDING, ca=stranger_ca, cert=pair.cert, key=pair.key)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        register_with(ks, context)


def test_minimum_version_follows_the_binding(ks):
    strict = load_binding({"tls.min_version": "TLSv1.3"})
    pair = ks.certs.client(CLIENT_ID)
    with running_keyserver(strict, ks.certs) as tls13_only:
        for version, served in ((ssl.TLSVersion.TLSv1_2, False), (ssl.TLSVersion.TLSv1_3, True)):
            context = client_ssl_context(BINDING, ca=ks.certs.ca, cert=pair.cert, key=pair.key)
            context.maximum_version = version
            if served:
                assert register_with(tls13_only, context).status_code == STATUS["registered"][0]
            else:
                with pytest.raises(httpx.ConnectError):
                    register_with(tls13_only, context)
