"""The EMSDP wire format as the binding defines it, in plain Python.

The scapy layers, the `dissect` command and the generated Wireshark dissector are all built from one
`Layout`, so a profile that overrides a tag or a width changes all three at once and they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PLANES = ("cp", "up")

# AKA parameter sizes in octets (TS 33.102 6.3, digest 8.1): fixed for RAND, AUTN and AUTS; RES is 4..16.
AKA_SIZES = {"rand": (16, 16), "autn": (16, 16), "auts": (14, 14), "res": (4, 16)}

# What each known TLV's value is, so that it can be shown decoded and its length checked.
VALUE_KINDS = {
    "imsi": "imsi",
    "suci": "suci",
    "ue_config": "ue_config",
    "enterprise_setup": "utf8",
    "serving_network": "serving_network",
    "hse_config": "hse_config",
    "rand": "octets",
    "autn": "octets",
    "res": "octets",
    "auts": "octets",
    "request_checksum": "octets",
    "key_identifier": "octets",
    "cause": "cause",
    "rejected_command": "command",
}


@dataclass(frozen=True)
class Layout:
    """Everything a codec needs to read and write EMSDP, taken from one binding."""

    udp_port: int
    header_fields: tuple[str, ...]  # transmission order, MSB first; 'counter' width depends on plane and scheme
    field_bits: Mapping[str, int]  # widths of the fixed header fields
    counter_bits: Mapping[str, tuple[int, ...]]  # plane -> width per counter scheme
    default_scheme: int
    version_value: int
    commands: Mapping[str, int]
    tag_bytes: int
    length_bytes: int
    tags: Mapping[str, int]
    tlv_lists: Mapping[str, tuple[str, ...]]
    causes: Mapping[str, int]
    mac_bytes: int
    mac_absent_when_key_id_zero: bool
    ue_config_release_octet: bool
    key_agreement_bits: Mapping[str, int]
    confidentiality_bit: int
    hse_config_fields: tuple[str, ...]
    services: Mapping[str, int]
    modes: Mapping[str, int]
    start_confirmation_flag: int
    serving_network_encoding: str
    suci_format: str
    checksum_bytes: int
    key_identifier_bytes: int

    @classmethod
    def from_binding(cls, binding: Mapping[str, Any]) -> Layout:
        def section(prefix: str) -> dict[str, Any]:
            head = prefix + "."
            return {k[len(head) :]: v for k, v in binding.items() if k.startswith(head)}

        fixed = {"version": "version_bits", "up_cp": "up_cp_bits", "rfu": "rfu_bits", "key_id": "key_id_bits"}
        fixed["session_id"] = "session_id_bits"
        return cls(
            udp_port=binding["transport.udp_port"],
            header_fields=tuple(binding["emsdp.header.fields"]),
            field_bits={f: binding[f"emsdp.header.{k}"] for f, k in fixed.items()},
            counter_bits={
                "cp": tuple(binding["emsdp.counters.cp_bits_by_scheme"]),
                "up": tuple(binding["emsdp.counters.up_bits_by_scheme"]),
            },
            default_scheme=binding["emsdp.counters.default_scheme"],
            version_value=binding["emsdp.header.version_value"],
            commands=section("emsdp.commands"),
            tag_bytes=binding["emsdp.tlv.tag_bytes"],
            length_bytes=binding["emsdp.tlv.length_bytes"],
            tags=section("emsdp.tlv.tags"),
            tlv_lists={k: tuple(v) for k, v in section("emsdp.tlv_lists").items()},
            causes=section("emsdp.reject_causes"),
            mac_bytes=binding["protection.mac.bits"] // 8,
            mac_absent_when_key_id_zero=binding["protection.mac.absent_when_key_id_zero"],
            ue_config_release_octet=binding["emsdp.ue_config.release_octet"],
            key_agreement_bits=section("emsdp.ue_config.key_agreement_bits"),
            confidentiality_bit=binding["emsdp.ue_config.confidentiality_requested_bit"],
            hse_config_fields=tuple(binding["emsdp.hse_config.fields"]),
            services=section("emsdp.hse_config.services"),
            modes=section("emsdp.hse_config.modes"),
            start_confirmation_flag=binding["emsdp.hse_config.start_confirmation_required_flag"],
            serving_network_encoding=binding["emsdp.serving_network.encoding"],
            suci_format=binding["suci.format"],
            checksum_bytes=binding["emsdp.request_checksum.bytes"],
            key_identifier_bytes=binding["keys.key_identifier.bits"] // 8,
        )

    @property
    def schemes(self) -> range:
        return range(len(self.counter_bits["cp"]))

    def header(self, plane: str, scheme: int) -> list[tuple[str, int]]:
        """(field, bits) in transmission order for a plane and counter scheme; zero-width fields dropped."""
        widths = {**self.field_bits, "counter": self.counter_bits[plane][scheme]}
        return [(f, widths[f]) for f in self.header_fields if widths[f]]

    def header_bytes(self, plane: str, scheme: int) -> int:
        return sum(bits for _, bits in self.header(plane, scheme)) // 8

    def bit_offset(self, field: str, plane: str, scheme: int) -> int | None:
        """Offset in bits of a header field from the start of the message (None if absent)."""
        offset = 0
        for name, bits in self.header(plane, scheme):
            if name == field:
                return offset
            offset += bits
        return None

    def plane_of(self, first_octets: bytes) -> str | None:
        """cp or up from the UP/CP flag; None if the message is too short to hold it. The flag's position does
        not depend on the counter scheme as long as it precedes the counter, which the dissector requires."""
        offset = self.bit_offset("up_cp", "cp", self.default_scheme)
        if offset is None or len(first_octets) * 8 <= offset:
            return None
        return "up" if first_octets[offset // 8] >> (7 - offset % 8) & 1 else "cp"

    def mac_present(self, key_id: int) -> bool:
        """TS 33.163 6.2.2: Key ID 000 means no keys are agreed, so nothing can carry a MAC."""
        return self.mac_bytes > 0 and (key_id != 0 or not self.mac_absent_when_key_id_zero)

    def value_size(self, tlv: str) -> tuple[int, int] | None:
        """(min, max) octets a TLV's value may have, or None when the value is variable."""
        if tlv in AKA_SIZES:
            return AKA_SIZES[tlv]
        fixed = {
            "imsi": 8,  # EF_IMSI bytes 2..9 (digest 4.3)
            "ue_config": 1 + int(self.ue_config_release_octet),
            "hse_config": len(self.hse_config_fields),
            "request_checksum": self.checksum_bytes,
            "key_identifier": self.key_identifier_bytes,
            "cause": 1,
            "rejected_command": 1,
        }
        if tlv in fixed:
            return fixed[tlv], fixed[tlv]
        if tlv == "serving_network" and self.serving_network_encoding == "plmn_id":
            return 3, 3
        return None

    def size_problem(self, tlv: str, octets: int) -> str | None:
        """What is wrong with a value of `octets` octets for this TLV, or None if its size is fine."""
        size = self.value_size(tlv)
        if size is None or size[0] <= octets <= size[1]:
            return None
        want = str(size[0]) if size[0] == size[1] else f"{size[0]}..{size[1]}"
        return f"{'over-long' if octets > size[1] else 'short'} TLV {tlv}: {octets} octets, expected {want}"

    def tag_names(self) -> dict[int, str]:
        return {code: name for name, code in self.tags.items()}

    def command_names(self) -> dict[int, str]:
        return {code: name for name, code in self.commands.items()}

    def cause_names(self) -> dict[int, str]:
        return {code: name for name, code in self.causes.items()}
