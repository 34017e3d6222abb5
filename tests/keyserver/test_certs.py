"""Test certificates: issued once, reused, reissued when missing or no longer chained, keys private."""

from __future__ import annotations

import ipaddress
import ssl
import stat
from pathlib import Path

from cryptography import x509

from conformance.keyserver.certs import CertificateDirectory, certificate_identity, default_cert_dir

REPO = Path(__file__).resolve().parents[2]


def test_client_certificate_carries_the_identity_in_its_common_name(tmp_path):
    pair = CertificateDirectory(tmp_path).client("emse-1")
    assert certificate_identity(pair.cert.read_bytes()) == "emse-1"
    der = ssl.PEM_cert_to_DER_cert(pair.cert.read_text())
    assert certificate_identity(der) == "emse-1"


def test_private_keys_are_readable_by_the_owner_only(tmp_path):
    certs = CertificateDirectory(tmp_path)
    certs.server(), certs.client("emse-1")
    keys = sorted(tmp_path.glob("*.key"))
    assert [k.stem for k in keys] == ["ca", "client-emse-1", "server"]
    assert all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keys)


def test_certificates_are_reused_when_present(tmp_path):
    first = CertificateDirectory(tmp_path)
    pem = first.server().cert.read_bytes(), first.client("emse-1").cert.read_bytes()
    again = CertificateDirectory(tmp_path)
    assert (again.server().cert.read_bytes(), again.client("emse-1").cert.read_bytes()) == pem


def test_missing_files_are_reissued_and_a_new_ca_reissues_every_leaf(tmp_path):
    certs = CertificateDirectory(tmp_path)
    server = certs.server()
    old_server = server.cert.read_bytes()
    server.key.unlink()
    assert certs.server().cert.read_bytes() != old_server  # the key was gone: a new pair
    client_pem = certs.client("emse-1").cert.read_bytes()
    (tmp_path / "ca.pem").unlink()
    certs.ca  # noqa: B018 - issues a new CA
    assert certs.client("emse-1").cert.read_bytes() != client_pem


def test_server_certificate_names_every_loopback_address(tmp_path):
    cert = x509.load_pem_x509_certificate(CertificateDirectory(tmp_path).server().cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]


def test_default_directory_is_a_user_cache_outside_the_repository():
    directory = default_cert_dir("lab")
    assert directory.parts[-3:] == ("best-conformance", "certs", "lab")
    assert REPO not in directory.parents
