"""Test certificates for mutual TLS on the key-server interfaces: a CA, a server certificate for the local
host, and one client certificate per identity, as PEM files in one directory.

The client's identity is the subject commonName of its certificate: a key server compares it with the client
id a client registers (EMSE_Id or EAS_Id), and identities such as 'emse-1' need not be DNS names or URIs.

Files are reused when present and still valid, and (re)issued when missing, expired, or not signed by the
directory's CA. The default directory is per user (platformdirs' cache dir when installed, else
$XDG_CACHE_HOME or ~/.cache), never the repository. Private keys are written mode 0600.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent first runs may race
    fcntl = None

APP_NAME = "best-conformance"
SERVER_HOSTS = ("localhost", "127.0.0.1", "::1")
_CA_NAME = "best-conformance test CA"
_CA_DAYS, _LEAF_DAYS = 3650, 365
_RENEW_BEFORE = datetime.timedelta(days=1)


@dataclass(frozen=True)
class CertPair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


def default_cert_dir(name: str = "default") -> Path:
    """~/.cache/best-conformance/certs/<name> (or the platform's user cache dir)."""
    try:
        from platformdirs import user_cache_path
    except ImportError:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / APP_NAME
    else:
        base = user_cache_path(APP_NAME)
    return base / "certs" / name


def certificate_identity(cert: bytes) -> str | None:
    """The identity a certificate (PEM or DER) carries: its first subject commonName, or None."""
    pem = cert.lstrip().startswith(b"-----")
    return _common_name(x509.load_pem_x509_certificate(cert) if pem else x509.load_der_x509_certificate(cert))


def _common_name(cert: x509.Certificate) -> str | None:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


class CertificateDirectory:
    """A CA and the certificates it issued, in one directory; each accessor issues what is missing."""

    def __init__(self, directory: Path | str | None = None, *, name: str = "default"):
        self.directory = Path(directory) if directory is not None else default_cert_dir(name)

    @property
    def ca(self) -> Path:
        """The CA certificate (PEM) both sides trust."""
        with self._locked():
            return self._ca()[0].cert

    def server(self, hosts: Sequence[str] = SERVER_HOSTS) -> CertPair:
        """A server certificate for these host names and addresses."""
        with self._locked():
            _, ca_cert, ca_key = self._ca()
            return self._leaf("server", ca_cert, ca_key, hosts[0], hosts, server=True)

    def client(self, identity: str) -> CertPair:
        """A client certificate whose subject commonName is `identity`."""
        with self._locked():
            _, ca_cert, ca_key = self._ca()
            slug = re.sub(r"[^A-Za-z0-9._-]", "_", identity)
            return self._leaf(f"client-{slug}", ca_cert, ca_key, identity, (), server=False)

    # -- internals --------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.directory / ".lock", "a") as lock:
            if fcntl:
                fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _ca(self) -> tuple[CertPair, x509.Certificate, ec.EllipticCurvePrivateKey]:
        pair = self._pair("ca")
        loaded = _load(pair)
        if loaded and _fresh(loaded[0]) and loaded[0].subject == loaded[0].issuer:
            return pair, *loaded
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _CA_NAME)])
        cert = (
            _builder(name, name, key, _CA_DAYS)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(key_cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write(pair, cert, key)
        return pair, cert, key

    def _leaf(
        self,
        stem: str,
        ca_cert: x509.Certificate,
        ca_key: ec.EllipticCurvePrivateKey,
        common_name: str,
        hosts: Sequence[str],
        *,
        server: bool,
    ) -> CertPair:
        pair = self._pair(stem)
        wanted_names = [_general_name(h) for h in hosts]
        loaded = _load(pair)
        if (
            loaded
            and _fresh(loaded[0])
            and _issued_by(loaded[0], ca_cert)
            and _common_name(loaded[0]) == common_name
            and _names(loaded[0]) == wanted_names
        ):
            return pair
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            _builder(subject, ca_cert.subject, key, _LEAF_DAYS)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
        )
        if wanted_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(wanted_names), critical=False)
        _write(pair, builder.sign(ca_key, hashes.SHA256()), key)
        return pair

    def _pair(self, stem: str) -> CertPair:
        return CertPair(self.directory / f"{stem}.pem", self.directory / f"{stem}.key")


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, days: int
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _usage(*, key_cert_sign: bool = False, digital_signature: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _names(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []


def _load(pair: CertPair) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    """The pair if both files exist, parse, and belong together; None means issue anew."""
    try:
        cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
        key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        return None
    return cert, key


def _fresh(cert: x509.Certificate) -> bool:
    return cert.not_valid_after_utc - _RENEW_BEFORE > datetime.datetime.now(datetime.UTC)


def _issued_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _write(pair: CertPair, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    """Key first (created 0600, never readable by others), each file replaced atomically."""
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _replace(pair.key, key_pem, 0o600)
    _replace(pair.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _replace(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, mode)  # O_CREAT's mode is masked by the umask and ignored for an existing file
    os.replace(tmp, path)


def harness_certificates() -> CertificateDirectory:
    """The harness's own CA (user cache): it issues the push receiver's server certificate when the profile
    gives none, so a SUT that pushes keys must trust this CA (`best-conformance harness-ca` prints it)."""
    return CertificateDirectory(name="harness")


def foreign_certificates() -> CertificateDirectory:
    """A CA no SUT trusts (user cache, never a run folder): the harness's "certificate from another CA"."""
    return CertificateDirectory(name="foreign")
