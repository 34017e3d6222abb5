"""TLV values in and out of their octets: IMSI, UE and HSE configuration, serving network, causes; and a
received message's TLVs by name (`tlv_values`).

Pure functions over a `Layout`; a value that does not decode raises ValueError with what is wrong, which the
codec turns into a problem flagged on the packet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conformance.crypto.suci import SuciError, build_suci, parse_suci
from conformance.emsdp.layout import VALUE_KINDS, Layout

if TYPE_CHECKING:
    from conformance.emsdp.fast import Message

IMSI_OCTETS = 8  # EF_IMSI bytes 2..9 (TS 31.102 4.2.2, digest 4.3)
_IMSI_TYPE = 0b001


def encode_imsi(digits: str) -> bytes:
    """EF_IMSI coding: digit 1 in the high nibble of the first octet with type 001 and the odd-parity bit,
    then two digits per octet, low nibble first, 'F' for unused nibbles (digest 4.3)."""
    if not digits.isascii() or not digits.isdigit() or not 6 <= len(digits) <= 15:
        raise ValueError(f"an IMSI is 6 to 15 decimal digits, got {digits!r}")
    parity = len(digits) % 2
    nibbles = [int(d) for d in digits[1:]]
    nibbles += [0xF] * (2 * (IMSI_OCTETS - 1) - len(nibbles))
    first = int(digits[0]) << 4 | parity << 3 | _IMSI_TYPE
    return bytes([first] + [nibbles[i] | nibbles[i + 1] << 4 for i in range(0, len(nibbles), 2)])


def decode_imsi(value: bytes) -> str:
    if len(value) != IMSI_OCTETS:
        raise ValueError(f"IMSI value must be {IMSI_OCTETS} octets, got {len(value)}")
    if value[0] & 0x07 != _IMSI_TYPE:
        raise ValueError(f"identity type {value[0] & 0x07:03b} is not IMSI (001)")
    nibbles = [value[0] >> 4] + [n for octet in value[1:] for n in (octet & 0x0F, octet >> 4)]
    digits = []
    for n in nibbles:
        if n == 0xF:
            break
        if n > 9:
            raise ValueError(f"nibble {n:#x} is not a digit")
        digits.append(str(n))
    if any(n != 0xF for n in nibbles[len(digits) :]):
        raise ValueError("digits after the 'F' filler")
    if (value[0] >> 3 & 1) != len(digits) % 2:
        raise ValueError(f"parity bit says {'odd' if value[0] >> 3 & 1 else 'even'}, {len(digits)} digits found")
    return "".join(digits)


def encode_ue_config(layout: Layout, release: int, key_agreements: list[str], confidentiality: bool) -> bytes:
    bits = 0
    for name in key_agreements:
        bits |= layout.key_agreement_bits[name]
    if confidentiality:
        bits |= layout.confidentiality_bit
    return (bytes([release]) if layout.ue_config_release_octet else b"") + bytes([bits])


def decode_ue_config(layout: Layout, value: bytes) -> dict[str, Any]:
    _expect_size(layout, "ue_config", value)
    release = value[0] if layout.ue_config_release_octet else None
    bits = value[-1]
    known = layout.confidentiality_bit | sum(layout.key_agreement_bits.values())
    return {
        "release": release,
        "key_agreements": [n for n, b in layout.key_agreement_bits.items() if bits & b],
        "confidentiality_requested": bool(bits & layout.confidentiality_bit),
        **({"unknown_bits": bits & ~known} if bits & ~known else {}),
    }


def encode_hse_config(layout: Layout, **fields: int | str) -> bytes:
    """Fields by name; service, mode and key_agreement may be given by name (e.g. service='up_integrity')."""
    names = {"service": layout.services, "mode": layout.modes, "key_agreement": layout.key_agreement_bits}
    out = []
    for field in layout.hse_config_fields:
        value = fields.get(field, 0)
        out.append(names[field][value] if isinstance(value, str) else value)
    return bytes(out)


def decode_hse_config(layout: Layout, value: bytes) -> dict[str, Any]:
    _expect_size(layout, "hse_config", value)
    decoded: dict[str, Any] = dict(zip(layout.hse_config_fields, value, strict=True))
    for field, table in (
        ("service", layout.services),
        ("mode", layout.modes),
        ("key_agreement", layout.key_agreement_bits),
    ):
        if field in decoded:
            by_code = {code: name for name, code in table.items()}
            decoded[field] = by_code.get(decoded[field], decoded[field])
    if "flags" in decoded:
        decoded["start_confirmation_required"] = bool(decoded["flags"] & layout.start_confirmation_flag)
    return decoded


def encode_serving_network(layout: Layout, network: str | bytes) -> bytes:
    """A serving network name (text) or a 3-octet PLMN id, as the binding's encoding says."""
    if layout.serving_network_encoding == "snn":
        return network.encode("utf-8") if isinstance(network, str) else network
    return bytes.fromhex(network) if isinstance(network, str) else network


def reject_tlvs(layout: Layout, cause: str, rejected_command: int | None) -> list[tuple[str, bytes]]:
    """A Message Reject's TLVs: the cause by name, and the command it rejects when the message had one."""
    tlvs = [("cause", bytes([layout.causes[cause]]))]
    if rejected_command is not None:
        tlvs.append(("rejected_command", bytes([rejected_command])))
    return tlvs


def decode_value(layout: Layout, tlv: str, value: bytes) -> Any:
    """The value shown decoded, for people and matchers. Raises ValueError if it does not decode."""
    kind = VALUE_KINDS.get(tlv, "octets")
    if kind == "imsi":
        return decode_imsi(value)
    if kind == "suci":
        try:
            suci = parse_suci(value, "nas") if layout.suci_format == "nas" else parse_suci(value.decode(), "string")
        except (SuciError, UnicodeDecodeError) as exc:
            raise ValueError(f"not a SUCI ({layout.suci_format}): {exc}") from None
        return build_suci(suci, "string")
    if kind == "ue_config":
        return decode_ue_config(layout, value)
    if kind == "hse_config":
        return decode_hse_config(layout, value)
    if kind == "utf8" or (kind == "serving_network" and layout.serving_network_encoding == "snn"):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"not UTF-8: {exc.reason} at octet {exc.start}") from None
    if kind in ("cause", "command"):
        _expect_size(layout, tlv, value)
        names = layout.cause_names() if kind == "cause" else layout.command_names()
        return names.get(value[0], f"unknown ({value[0]:#04x})")
    _expect_size(layout, tlv, value)
    return value.hex()


def _expect_size(layout: Layout, tlv: str, value: bytes) -> None:
    if problem := layout.size_problem(tlv, len(value)):
        raise ValueError(problem)


def tlv_values(packet: Message) -> dict[str, bytes]:
    """A CP message's TLVs by name (the first of each); unknown tags are left out."""
    found: dict[str, bytes] = {}
    for tlv in getattr(packet, "tlvs", []):
        name = getattr(tlv, "tag_name", None)
        if name and name not in found:
            found[name] = tlv.value
    return found
