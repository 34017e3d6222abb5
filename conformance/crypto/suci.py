"""SUCI concealment and de-concealment (TS 33.501 Annex C) and the SUCI containers that carry it.

The harness must both produce SUCIs a home network accepts and check the ones a UE sends, so everything
here is checked against the published Annex C.4 test data rather than against any other implementation.
ECIES follows C.3 with the profile parameters of C.3.4.1 (A, X25519) and C.3.4.2 (B, secp256r1):
ANSI-X9.63-KDF with SHA-256 and SharedInfo1 = the ephemeral public key as sent, EK ‖ ICB ‖ MK = 16 ‖ 16 ‖ 32
octets, AES-128-CTR, and a MAC tag of the 8 leading octets of HMAC-SHA-256 over the ciphertext (SharedInfo2
is empty). The scheme output is ephemeral public key ‖ ciphertext ‖ MAC tag.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives import constant_time, hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF

# Protection Scheme Identifiers, TS 33.501 C.1.
NULL_SCHEME = 0x0
PROFILE_A = 0x1
PROFILE_B = 0x2

# SUPI type / SUPI format IMSI, TS 23.003 cl. 2.2B and TS 24.501 cl. 9.11.3.4; the only type with MCC/MNC.
SUPI_TYPE_IMSI = 0

ENC_KEY_LEN, ICB_LEN, MAC_KEY_LEN, MAC_TAG_LEN = 16, 16, 32, 8

# Ephemeral public key length in the scheme output: X25519 has no prefix, profile B is always compressed.
_PUBLIC_KEY_LEN = {"A": 32, "B": 33}

# The ECIES profile behind each ECIES protection scheme id.
PROFILES = {PROFILE_A: "A", PROFILE_B: "B"}

SuciFormat = Literal["nas", "string"]


class SuciError(ValueError):
    """A SUCI, scheme output or key that cannot be used: bad MAC, wrong length, invalid point or encoding."""


@dataclass(frozen=True)
class EciesKeys:
    """The KDF output split as C.3.2 prescribes: leftmost EK, middle ICB, rightmost MK."""

    enc_key: bytes
    icb: bytes
    mac_key: bytes


@dataclass(frozen=True)
class SchemeOutput:
    """An ECIES protection-scheme result: ephemeral public key ‖ ciphertext ‖ MAC tag (C.3.2)."""

    ephemeral_public_key: bytes
    ciphertext: bytes
    mac_tag: bytes

    def to_bytes(self) -> bytes:
        return self.ephemeral_public_key + self.ciphertext + self.mac_tag

    @classmethod
    def from_bytes(cls, data: bytes, profile: str) -> SchemeOutput:
        """Split a scheme output; the ciphertext must not be empty, as no MSIN or username is."""
        key_len = _public_key_len(profile)
        if len(data) <= key_len + MAC_TAG_LEN:
            raise SuciError(f"profile {profile} scheme output of {len(data)} octets is too short")
        if profile == "B" and data[0] not in (0x02, 0x03):
            raise SuciError("profile B ephemeral public key must be a compressed point (C.3.4.2)")
        return cls(data[:key_len], data[key_len:-MAC_TAG_LEN], data[-MAC_TAG_LEN:])


def _public_key_len(profile: str) -> int:
    try:
        return _PUBLIC_KEY_LEN[profile]
    except (KeyError, TypeError):
        raise SuciError(f"unknown ECIES profile {profile!r}; expected 'A' or 'B'") from None


def _x25519_private(private_key: bytes) -> x25519.X25519PrivateKey:
    if len(private_key) != 32:
        raise SuciError("an X25519 private key is 32 octets")
    return x25519.X25519PrivateKey.from_private_bytes(private_key)


def _p256_private(private_key: bytes) -> ec.EllipticCurvePrivateKey:
    if len(private_key) != 32:
        raise SuciError("a secp256r1 private key is 32 octets")
    try:
        return ec.derive_private_key(int.from_bytes(private_key, "big"), ec.SECP256R1())
    except ValueError as exc:
        raise SuciError(f"invalid secp256r1 private key: {exc}") from None


def generate_private_key(profile: str) -> bytes:
    """A fresh private key for the profile's curve, as raw octets (the UE's ephemeral key, or an HN key)."""
    if _public_key_len(profile) == 32:
        return x25519.X25519PrivateKey.generate().private_bytes_raw()
    return ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value.to_bytes(32, "big")


def public_key(private_key: bytes, profile: str) -> bytes:
    """The public key as it appears in a scheme output: raw for A, compressed point for B."""
    if _public_key_len(profile) == 32:
        return _x25519_private(private_key).public_key().public_bytes_raw()
    return (
        _p256_private(private_key)
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    )


def key_agreement(private_key: bytes, peer_public_key: bytes, profile: str) -> bytes:
    """The ECIES shared secret Z (Eph. Shared Key in C.4): X25519 for A, the x-coordinate of ECDH for B.

    Profile B's cofactor Diffie-Hellman equals plain ECDH on secp256r1 (h = 1, C.3.4.0). A peer key for B may
    be compressed or uncompressed, since C.4.4 publishes the home network key in both forms.
    """
    if _public_key_len(profile) == 32:
        x_private = _x25519_private(private_key)
        try:
            return x_private.exchange(x25519.X25519PublicKey.from_public_bytes(peer_public_key))
        except ValueError as exc:  # wrong length, or a low-order point giving an all-zero secret
            raise SuciError(f"profile A key agreement failed: {exc}") from None
    p_private = _p256_private(private_key)
    try:
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), peer_public_key)
    except ValueError as exc:
        raise SuciError(f"profile B public key is not a secp256r1 point: {exc}") from None
    return p_private.exchange(ec.ECDH(), peer)


def derive_keys(shared_key: bytes, ephemeral_public_key: bytes) -> EciesKeys:
    """ANSI-X9.63-KDF(SHA-256) of Z with SharedInfo1 = the ephemeral public key, split EK ‖ ICB ‖ MK."""
    length = ENC_KEY_LEN + ICB_LEN + MAC_KEY_LEN
    k = X963KDF(algorithm=hashes.SHA256(), length=length, sharedinfo=ephemeral_public_key).derive(shared_key)
    return EciesKeys(k[:ENC_KEY_LEN], k[ENC_KEY_LEN : ENC_KEY_LEN + ICB_LEN], k[ENC_KEY_LEN + ICB_LEN :])


def _aes_ctr(enc_key: bytes, icb: bytes, data: bytes) -> bytes:
    """AES-128-CTR with the 32-bit incrementing function C.3.4.0 requires (NIST SP 800-38A B.1, m = 32).

    A full-width 128-bit counter would carry into the upper 96 bits when the low 32 bits wrap, so the
    stream restarts at the wrap point with those bits reset instead.
    """
    before_wrap = (2**32 - int.from_bytes(icb[12:], "big")) * 16
    head = Cipher(algorithms.AES(enc_key), modes.CTR(icb)).encryptor().update(data[:before_wrap])
    if len(data) <= before_wrap:
        return head
    wrapped = icb[:12] + bytes(4)
    return head + Cipher(algorithms.AES(enc_key), modes.CTR(wrapped)).encryptor().update(data[before_wrap:])


def _mac_tag(mac_key: bytes, ciphertext: bytes) -> bytes:
    h = hmac.HMAC(mac_key, hashes.SHA256())
    h.update(ciphertext)
    return h.finalize()[:MAC_TAG_LEN]


def conceal(
    msin_or_plaintext: bytes,
    hn_public_key: bytes,
    profile: str,
    *,
    ephemeral_private_key: bytes | None = None,
) -> bytes:
    """The UE side (C.3.2): return the scheme output for a scheme input (e.g. the BCD MSIN).

    The ephemeral key is fresh unless given; give it only to reproduce known answers.
    """
    if not msin_or_plaintext:
        raise SuciError("the scheme input is empty")
    eph_private = generate_private_key(profile) if ephemeral_private_key is None else ephemeral_private_key
    eph_public = public_key(eph_private, profile)
    keys = derive_keys(key_agreement(eph_private, hn_public_key, profile), eph_public)
    ciphertext = _aes_ctr(keys.enc_key, keys.icb, msin_or_plaintext)
    return SchemeOutput(eph_public, ciphertext, _mac_tag(keys.mac_key, ciphertext)).to_bytes()


def deconceal(scheme_output: bytes, hn_private_key: bytes, profile: str) -> bytes:
    """The home network side (C.3.3): verify the MAC tag, then return the scheme input."""
    out = SchemeOutput.from_bytes(scheme_output, profile)
    eph_public = out.ephemeral_public_key
    keys = derive_keys(key_agreement(hn_private_key, eph_public, profile), eph_public)
    if not constant_time.bytes_eq(_mac_tag(keys.mac_key, out.ciphertext), out.mac_tag):
        raise SuciError("MAC tag mismatch: scheme output altered or concealed for another key")
    return _aes_ctr(keys.enc_key, keys.icb, out.ciphertext)


_DIGITS = re.compile(r"[0-9]+", re.ASCII)


def _bcd(digits: str) -> bytes:
    """Packed BCD, first digit in the low nibble, '1111' filling an odd final octet (TS 24.501 9.11.3.4)."""
    if not _DIGITS.fullmatch(digits):
        raise SuciError(f"{digits!r} is not a string of decimal digits")
    padded = digits + "F" * (len(digits) % 2)
    return bytes(int(padded[i + 1] + padded[i], 16) for i in range(0, len(padded), 2))


def _unbcd(octets: bytes, max_fill: int) -> str:
    """Inverse of _bcd; up to max_fill trailing '1111' nibbles are filler, any other non-digit is an error."""
    nibbles = [n for octet in octets for n in (octet & 0x0F, octet >> 4)]
    fill = 0
    while nibbles and nibbles[-1] == 0xF and fill < max_fill:
        nibbles.pop()
        fill += 1
    if not nibbles or any(n > 9 for n in nibbles):
        raise SuciError(f"{octets.hex()} is not BCD digits with at most {max_fill} filler nibble(s)")
    return "".join(map(str, nibbles))


def encode_msin(msin: str) -> bytes:
    """The IMSI scheme input of C.3.1: the MSIN in packed BCD, '001002086' -> 00 01 20 80 F6 in C.4.2.1."""
    return _bcd(msin)


def decode_msin(bcd: bytes) -> str:
    """The MSIN from its packed BCD scheme input; only an odd length's last nibble may be filler."""
    return _unbcd(bcd, max_fill=1)


@dataclass(frozen=True)
class Suci:
    """A SUCI for SUPI type IMSI (TS 23.003 cl. 2.2B), independent of the container that carries it.

    `scheme_output` is raw octets for every scheme; for the null scheme it is the BCD MSIN.
    """

    supi_type: int
    mcc: str
    mnc: str
    routing_indicator: str
    scheme_id: int
    hn_key_id: int
    scheme_output: bytes

    def __post_init__(self) -> None:
        if self.supi_type != SUPI_TYPE_IMSI:
            raise SuciError(f"SUPI type {self.supi_type} is not supported; only IMSI (0) carries MCC/MNC")
        for name, value, lengths in (
            ("MCC", self.mcc, (3,)),
            ("MNC", self.mnc, (2, 3)),
            ("routing indicator", self.routing_indicator, (1, 2, 3, 4)),
        ):
            if not isinstance(value, str) or not _DIGITS.fullmatch(value) or len(value) not in lengths:
                raise SuciError(f"{name} {value!r} must be {' or '.join(map(str, lengths))} decimal digits")
        if not 0 <= self.scheme_id <= 0xF:
            raise SuciError(f"protection scheme id {self.scheme_id} does not fit 4 bits")
        if not 0 <= self.hn_key_id <= 0xFF:
            raise SuciError(f"home network public key id {self.hn_key_id} does not fit an octet")
        if self.scheme_id == NULL_SCHEME:
            if self.hn_key_id != 0:
                raise SuciError("the null scheme uses home network public key id 0")
            decode_msin(self.scheme_output)
        elif self.scheme_id in PROFILES:
            SchemeOutput.from_bytes(self.scheme_output, PROFILES[self.scheme_id])
        elif not self.scheme_output:
            raise SuciError("the scheme output is empty")


def _nas_octets(suci: Suci) -> bytes:
    """5GS mobile identity value octets 4.. (TS 24.501 9.11.3.4): SUPI format IMSI, type of identity SUCI."""
    mnc3 = suci.mnc[2] if len(suci.mnc) == 3 else "F"
    routing = _bcd(suci.routing_indicator).ljust(2, b"\xff")
    header = bytes([SUPI_TYPE_IMSI << 4 | 0b001, *_bcd(suci.mcc[:2]), int(mnc3 + suci.mcc[2], 16)])
    ids = bytes([suci.scheme_id, suci.hn_key_id])
    return header + _bcd(suci.mnc[:2]) + routing + ids + suci.scheme_output


def _digit(nibble: int, name: str) -> str:
    if nibble > 9:
        raise SuciError(f"{name} is {nibble:#x}, not a decimal digit")
    return str(nibble)


def _parse_nas(octets: bytes) -> Suci:
    if len(octets) < 9:
        raise SuciError(f"a SUCI of {len(octets)} octets is shorter than its 8-octet header plus output")
    if octets[0] & 0x07 != 0b001:
        raise SuciError("type of identity is not SUCI")
    if (octets[0] >> 4) & 0x07 != SUPI_TYPE_IMSI:
        raise SuciError(f"SUPI format {(octets[0] >> 4) & 0x07} is not supported; only IMSI (0)")
    mcc = _unbcd(octets[1:2], max_fill=0) + _digit(octets[2] & 0x0F, "MCC digit 3")
    mnc3 = octets[2] >> 4
    mnc = _unbcd(octets[3:4], max_fill=0) + ("" if mnc3 == 0xF else _digit(mnc3, "MNC digit 3"))
    return Suci(
        supi_type=SUPI_TYPE_IMSI,
        mcc=mcc,
        mnc=mnc,
        routing_indicator=_unbcd(octets[4:6], max_fill=3),
        scheme_id=octets[6] & 0x0F,
        hn_key_id=octets[7],
        scheme_output=bytes(octets[8:]),
    )


# suci-<supi type>-<MCC>-<MNC>-<routing indicator>-<scheme id>-<HN key id>-<scheme output>: the SUCI alternative
# of the SupiOrSuci pattern of TS 29.571, whose parts are those of TS 23.003 cl. 2.2B. The scheme id is one hex
# digit; the null scheme carries the MSIN digits, the other schemes hexadecimal octets.
_SUCI_STRING = re.compile(
    r"suci-0-([0-9]{3})-([0-9]{2,3})-([0-9]{1,4})-([0-9a-fA-F])-(0|[1-9][0-9]{0,2})-([0-9a-fA-F]+)", re.ASCII
)


def _string(suci: Suci) -> str:
    output = decode_msin(suci.scheme_output) if suci.scheme_id == NULL_SCHEME else suci.scheme_output.hex()
    return (
        f"suci-{suci.supi_type}-{suci.mcc}-{suci.mnc}-{suci.routing_indicator}-{suci.scheme_id:x}-"
        f"{suci.hn_key_id}-{output}"
    )


def _parse_string(text: str) -> Suci:
    match = _SUCI_STRING.fullmatch(text)
    if not match:
        raise SuciError(f"{text[:80]!r} is not a SUCI string of SUPI type IMSI")
    mcc, mnc, routing, scheme, key_id, output = match.groups()
    scheme_id = int(scheme, 16)
    if scheme_id == NULL_SCHEME:
        scheme_output = encode_msin(output)
    elif len(output) % 2:
        raise SuciError("the scheme output has an odd number of hexadecimal digits")
    else:
        scheme_output = bytes.fromhex(output)
    return Suci(SUPI_TYPE_IMSI, mcc, mnc, routing, scheme_id, int(key_id), scheme_output)


def build_suci(suci: Suci, format: SuciFormat) -> bytes | str:
    """Encode a SUCI in the container a profile chose.

    'nas': the 5GS mobile identity value octets of TS 24.501 cl. 9.11.3.4 from octet 4 on (no IEI, no length);
    'string': the 'suci-0-<MCC>-<MNC>-<routing indicator>-<scheme id>-<HN key id>-<scheme output>' text.
    """
    if format == "nas":
        return _nas_octets(suci)
    if format == "string":
        return _string(suci)
    raise SuciError(f"unknown SUCI format {format!r}; expected 'nas' or 'string'")


def parse_suci(value: bytes | str, format: SuciFormat) -> Suci:
    """Decode a SUCI in the given container format; anything malformed raises SuciError."""
    if format == "nas" and isinstance(value, bytes | bytearray):
        return _parse_nas(bytes(value))
    if format == "string" and isinstance(value, str):
        return _parse_string(value)
    raise SuciError(f"cannot parse a {type(value).__name__} as SUCI format {format!r}")


def suci_imsi(value: bytes, format: SuciFormat, private_keys: Mapping[tuple[int, str], bytes]) -> str:
    """The IMSI digits a SUCI TLV value (in the `format` container) conceals, de-concealed with the home network
    private key it names: `private_keys` by (key id, ECIES profile 'A' or 'B'). What the home network does with a
    SUCI (TS 33.501 6.12.2); SuciError says why it cannot be read."""
    try:
        suci = parse_suci(value, "nas") if format == "nas" else parse_suci(value.decode(), "string")
    except UnicodeDecodeError as exc:
        raise SuciError(f"a string SUCI that is not text: {exc}") from None
    if suci.scheme_id == NULL_SCHEME:
        return suci.mcc + suci.mnc + decode_msin(suci.scheme_output)
    profile = PROFILES.get(suci.scheme_id)
    key = private_keys.get((suci.hn_key_id, profile)) if profile else None
    if key is None:
        raise SuciError(f"no home network key {suci.hn_key_id} for scheme {suci.scheme_id}")
    return suci.mcc + suci.mnc + decode_msin(deconceal(suci.scheme_output, key, profile))
