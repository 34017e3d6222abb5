"""Signing a run folder, and telling exactly what changed in one.

signature.json (next to compliance.json) is detached: an Ed25519 signature over the canonical JSON of
{format, algorithm, public key, fingerprint, signed_at, manifest}. The manifest holds the digest of the canonical
compliance.json, one digest per top-level field and per case of it (so that a change can be named), and the
sha256 of every other file of the run folder (report.html, results.jsonl, junit.xml, pcaps, traces, key logs).
`verify` recomputes all of it and lists every difference: a file changed, missing or added, a case or field of
compliance.json changed, the signature itself, the signer's key, the schema.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from conformance.report.compliance import (
    COMPLIANCE,
    canonical,
    case_digests,
    digest,
    field_digests,
    file_sha256,
    iso,
    load_compliance,
    schema_problems,
)

SIGNATURE = "signature.json"
FORMAT, FORMAT_VERSION, ALGORITHM = "best-conformance/signature", 1, "Ed25519"
APP_NAME = "best-conformance"


class SigningError(ValueError):
    """Bad input for signing or verifying (no run folder, no compliance.json, a key that is not Ed25519...)."""


# ---- keys --------------------------------------------------------------------------------------------


def default_key_path() -> Path:
    """The lab's default signing key: <user config dir>/best-conformance/lab-signing-key.pem."""
    from platformdirs import user_config_path

    return user_config_path(APP_NAME) / "lab-signing-key.pem"


def public_path(private: Path) -> Path:
    return private.with_name(private.name + ".pub")


def fingerprint(public: Ed25519PublicKey) -> str:
    """SHA256:<hex> of the raw 32-octet public key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "SHA256:" + hashlib.sha256(raw).hexdigest()


def keygen(out: Path, *, force: bool = False) -> tuple[Path, Path, str]:
    """A new Ed25519 key: the private key as PKCS#8 PEM (mode 0600) at out, the public key at out.pub."""
    pub = public_path(out)
    if not force and (out.exists() or pub.exists()):
        raise SigningError(f"{out if out.exists() else pub}: exists; give another --out, or --force to replace it")
    key = Ed25519PrivateKey.generate()
    out.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    with os.fdopen(os.open(out, flags, 0o600), "wb") as f:
        f.write(pem)
    os.chmod(out, 0o600)  # also when --force replaced a file with wider permissions
    public = key.public_key()
    pub.write_bytes(public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return out, pub, fingerprint(public)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise SigningError(f"--key {path}: cannot read: {exc.strerror or exc}") from None
    except (ValueError, TypeError) as exc:
        raise SigningError(f"--key {path}: not an unencrypted PEM private key ({exc}); make one with keygen") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"--key {path}: a {type(key).__name__}, not Ed25519; make one with best-conformance keygen")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"--public-key {path}: cannot read: {exc.strerror or exc}") from None
    if b"PRIVATE KEY" in data:
        raise SigningError(f"--public-key {path}: a private key; give its public key ({public_path(path).name})")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise SigningError(f"--public-key {path}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError(f"--public-key {path}: a {type(key).__name__}, not an Ed25519 public key")
    return key


# ---- the manifest ------------------------------------------------------------------------------------


def run_files(run_dir: Path) -> dict[str, str]:
    """sha256 of every file of the run folder but compliance.json (signed as canonical JSON) and signature.json."""
    files = {}
    for path in sorted(run_dir.rglob("*")):
        name = path.relative_to(run_dir).as_posix()
        if path.is_file() and name not in (COMPLIANCE, SIGNATURE):
            files[name] = file_sha256(path)
    return files


def manifest(run_dir: Path, doc: dict[str, Any]) -> dict[str, Any]:
    return {
        COMPLIANCE: {"sha256": digest(doc), "fields": field_digests(doc), "cases": case_digests(doc)},
        "files": run_files(run_dir),
    }


def _signed_part(document: dict[str, Any]) -> bytes:
    return canonical({k: v for k, v in document.items() if k != "signature"})


def sign(run_dir: Path, key: Ed25519PrivateKey) -> Path:
    """Write RUN_DIR/signature.json; compliance.json must be there and match its schema."""
    _check_run_dir(run_dir)
    try:
        doc = load_compliance(run_dir)
    except ValueError as exc:
        raise SigningError(f"cannot sign: {exc}") from None
    public = key.public_key()
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "algorithm": ALGORITHM,
        "public_key": _b64(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)),
        "key_fingerprint": fingerprint(public),
        "signed_at": iso(datetime.datetime.now(datetime.UTC)),
        "manifest": manifest(run_dir, doc),
    }
    document["signature"] = _b64(key.sign(_signed_part(document)))
    out = run_dir / SIGNATURE
    out.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out


# ---- verifying ---------------------------------------------------------------------------------------


@dataclass
class Verification:
    """What verify found: `altered` lists each difference as 'where: what'; empty means valid."""

    signer: str = ""
    signed_at: str = ""
    files: int = 0
    cases: int = 0
    altered: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.altered


def verify(run_dir: Path, public_key: Ed25519PublicKey | None = None) -> Verification:
    """Check the signature (against public_key when given, else the key signature.json names), every digest,
    and the schema. SigningError for bad input (no run folder, no or unreadable signature.json)."""
    _check_run_dir(run_dir)
    document = _read_signature(run_dir)
    result = Verification(signer=document["key_fingerprint"], signed_at=str(document.get("signed_at", "")))
    _check_signature(document, public_key, result)
    signed = document["manifest"]
    _check_compliance(run_dir, signed.get(COMPLIANCE) or {}, result)
    _check_files(run_dir, signed.get("files") or {}, result)
    return result


def _check_signature(document: dict[str, Any], trusted: Ed25519PublicKey | None, result: Verification) -> None:
    try:
        named = Ed25519PublicKey.from_public_bytes(base64.b64decode(document["public_key"], validate=True))
        signature = base64.b64decode(document["signature"], validate=True)
    except (ValueError, TypeError):
        result.altered.append(f"{SIGNATURE}: public_key or signature is not base64 of an Ed25519 key/signature")
        return
    if fingerprint(named) != document["key_fingerprint"]:
        result.altered.append(f"{SIGNATURE}: key_fingerprint does not match public_key")
    if trusted is not None and fingerprint(trusted) != fingerprint(named):
        result.altered.append(
            f"{SIGNATURE}: signed by another key ({fingerprint(named)}), not the one given ({fingerprint(trusted)})"
        )
        return
    if trusted is None:
        result.notes.append(f"signer identified only by the key in {SIGNATURE}; give --public-key to check whose")
    try:
        (trusted or named).verify(signature, _signed_part(document))
    except InvalidSignature:
        result.altered.append(f"{SIGNATURE}: the signature does not verify: the manifest or its fields were altered")


def _check_compliance(run_dir: Path, signed: dict[str, Any], result: Verification) -> None:
    path = run_dir / COMPLIANCE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        result.altered.append(f"{COMPLIANCE}: missing")
        return
    except (OSError, ValueError) as exc:
        result.altered.append(f"{COMPLIANCE}: not readable as JSON ({exc})")
        return
    if not isinstance(doc, dict):
        result.altered.append(f"{COMPLIANCE}: not a JSON object")
        return
    result.cases = len(doc.get("cases") or [])
    if digest(doc) != signed.get("sha256"):
        _diff(f"{COMPLIANCE}: field", signed.get("fields") or {}, field_digests(doc), result)
        _diff(f"{COMPLIANCE}: case", signed.get("cases") or {}, case_digests(doc), result)
        if not any(line.startswith(COMPLIANCE) for line in result.altered):
            result.altered.append(f"{COMPLIANCE}: changed")
    for problem in schema_problems(doc)[:10]:
        result.altered.append(f"{COMPLIANCE}: does not match compliance.schema.json at {problem}")


def _check_files(run_dir: Path, signed: dict[str, str], result: Verification) -> None:
    actual = run_files(run_dir)
    result.files = len(signed)
    _diff("file", signed, actual, result, show_digests=True)


def _diff(
    what: str, signed: dict[str, str], actual: dict[str, str], result: Verification, *, show_digests: bool = False
) -> None:
    for name in sorted(signed.keys() | actual.keys()):
        before, now = signed.get(name), actual.get(name)
        if before == now:
            continue
        if now is None:
            change = "missing (signed, now gone)"
        elif before is None:
            change = "added (not signed)"
        else:
            change = f"changed (signed sha256 {before[:12]}…, now {now[:12]}…)" if show_digests else "changed"
        result.altered.append(f"{what} {name}: {change}")


def _check_run_dir(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise SigningError(f"{run_dir}: not a folder; give a run folder such as reports/<run-id>/")


def _read_signature(run_dir: Path) -> dict[str, Any]:
    path = run_dir / SIGNATURE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if not (run_dir / COMPLIANCE).exists():
            raise SigningError(
                f"{run_dir}: not a run folder (no {COMPLIANCE}, no {SIGNATURE}); give one such as reports/<run-id>/"
            ) from None
        raise SigningError(f"{path}: missing; sign the run folder first (best-conformance sign {run_dir})") from None
    except (OSError, ValueError) as exc:
        raise SigningError(f"{path}: not readable as JSON: {exc}") from None
    if not isinstance(document, dict):
        raise SigningError(f"{path}: not a {FORMAT} document (not a JSON object)")
    missing = [k for k in ("public_key", "key_fingerprint", "manifest", "signature") if k not in document]
    if document.get("format") != FORMAT or missing:
        raise SigningError(f"{path}: not a {FORMAT} document (missing {', '.join(missing) or 'format'})")
    manifest = document["manifest"]
    if not (isinstance(manifest, dict) and isinstance(manifest.get("files"), dict)):
        raise SigningError(f"{path}: manifest is not a mapping with 'files'")
    if document.get("algorithm") != ALGORITHM or document.get("format_version") != FORMAT_VERSION:
        raise SigningError(
            f"{path}: algorithm {document.get('algorithm')!r}, format_version {document.get('format_version')!r}; "
            f"this harness verifies {ALGORITHM}, format_version {FORMAT_VERSION}"
        )
    return document


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
