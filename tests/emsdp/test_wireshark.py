"""The generated Wireshark dissector, run in real tshark, agrees field by field with the Python codec.

Both read the same pcap: tshark with the Lua generated from a layout, the codec as the `dissect` command does
(`read_trace`, which follows the counter scheme per flow by the rule the Lua states). A comparison that a wrong
layout does not break would prove nothing, so one test feeds it a dissector generated with another Session ID
width and expects it to object.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conformance.binding import load_binding
from conformance.capture.tap import PcapTap
from conformance.crypto.suci import Suci, build_suci
from conformance.emsdp import Codec, Layout
from conformance.emsdp.layout import VALUE_KINDS
from conformance.emsdp.trace import read_trace
from conformance.emsdp.values import encode_hse_config, encode_imsi, encode_serving_network, encode_ue_config
from conformance.emsdp.wireshark import lua_dissector

needs_tshark = pytest.mark.skipif(
    shutil.which("tshark") is None,
    reason="tshark not installed (apt-get install tshark): the generated Lua dissector is only checked in tshark",
)

UE, UE2 = ("127.0.0.1", 40000), ("127.0.0.1", 40001)
OVERRIDES = {"transport.udp_port": 4000, "emsdp.tlv.tags.suci": 0x22}

Frame = tuple[bytes, tuple[str, int], tuple[str, int]]


# ---- the exchange ------------------------------------------------------------------------------------------


def exchange(codec: Codec) -> list[Frame]:
    """A session from request to terminate (scheme 2 fixed by Session Start), then malformed messages."""
    layout, hse = codec.layout, ("127.0.0.1", codec.layout.udp_port)
    rand, autn, res = bytes(range(16)), bytes(range(16, 32)), bytes.fromhex("a54211d5e3ba50bf")
    request = codec.cp(
        "session_request",
        [
            ("imsi", encode_imsi("001010123456789")),
            ("ue_config", encode_ue_config(layout, 17, ["5g_aka", "eps"], True)),
            ("enterprise_setup", b"eas.example.com"),
            ("serving_network", encode_serving_network(layout, "5G:mnc001.mcc001.3gppnetwork.org")),
        ],
    )
    hse_config = encode_hse_config(
        layout, service="up_integrity", mode="ue_to_hse", counter_scheme=2, mac_bits=64, integrity_algorithm=2,
        flags=layout.start_confirmation_flag,
    )  # fmt: skip
    start = codec.cp(
        "session_start",
        [("rand", rand), ("autn", autn), ("hse_config", hse_config), ("request_checksum", b"\x5a\x17\xc0\xde")],
        session_id=7,
    )
    mac = {"mac": bytes.fromhex("0123456789abcdef")[: layout.mac_bytes]}
    s2 = {"scheme": 2, "session_id": 7}
    messages = [
        (request, UE, hse),
        (start, hse, UE),
        (codec.cp("session_start_confirmation", [("res", res)], key_id=1, counter=1, **s2, **mac), UE, hse),
        (codec.up(b"\x45\x00 user data", key_id=1, counter=2, **s2, **mac), UE, hse),
        (codec.cp("manage_keys_request", [("rand", rand[::-1]), ("autn", autn)], key_id=1, counter=3, **s2, **mac),
         hse, UE),
        (codec.cp("manage_keys_response", [("res", res[::-1])], key_id=2, counter=4, **s2, **mac), UE, hse),
        (codec.cp("message_reject", [("cause", bytes([layout.causes["invalid_mac"]])),
                                     ("rejected_command", bytes([layout.commands["manage_keys_response"]]))],
                  key_id=2, counter=5, **s2, **mac), hse, UE),
        (codec.cp("session_terminate_request", key_id=2, counter=6, **s2, **mac), UE, hse),
        (codec.cp("session_terminate_response", key_id=2, counter=7, **s2, **mac), hse, UE),
        # malformed: unknown tag, unknown command, a TLV running past the end, a 2-octet datagram,
        # a value of the wrong size, an IMSI whose parity bit lies
        (codec.cp("session_terminate_request", [codec.layers.tlv(tag=0x7F, value=b"??")], **s2), UE, hse),
        (codec.cp(0x99, [("request_checksum", b"\x00\x01\x02\x03")], **s2), UE, hse),
        (bytes(codec.cp("session_request", [("enterprise_setup", b"eas.example.com")], **s2))[:-4], UE, hse),
        (b"\x00\x07", UE, hse),
        (codec.cp("session_request", [("imsi", encode_imsi("001010123456789")[:7])], **s2), UE, hse),
        (codec.cp("session_request", [("imsi", bytes([0x01]) + encode_imsi("001010123456789")[1:])], **s2), UE, hse),
        # another UE, another flow: still the default scheme, which a Session Start naming no known scheme keeps
        (codec.cp("session_request", [("imsi", encode_imsi("001010000000001"))]), UE2, hse),
        (codec.cp("session_start", [("hse_config", encode_hse_config(layout, counter_scheme=9))]), hse, UE2),
        (codec.cp("session_terminate_request", session_id=8), UE2, hse),
    ]  # fmt: skip
    return [(bytes(message), src, dst) for message, src, dst in messages]


def write_pcap(path: Path, frames: list[Frame]) -> Path:
    with PcapTap(path) as tap:
        for payload, src, dst in frames:
            tap.record(payload, src, dst)
    return path


def expected_views(codec: Codec, pcap: Path) -> list[tuple[int, dict[str, Any]]]:
    """(scheme, codec view) per frame, as the `dissect` command reads the pcap (`SCHEME_RULE` flow by flow)."""
    return [(message.scheme, codec.describe(message.packet)) for message in read_trace(pcap, codec)]


# ---- tshark ------------------------------------------------------------------------------------------------


def run_tshark(layout: Layout, pcap: Path, workdir: Path) -> tuple[list[dict[str, Any]], str]:
    """Each frame's layers as tshark's JSON gives them, with the dissector generated from `layout`; and the
    command line. HOME and the config dir point at `workdir` so that no personal plugin or preference (say, a
    changed default scheme) leaks in."""
    script = workdir / "emsdp.lua"
    script.write_text(lua_dissector(layout))
    command = ["tshark", "-n", "-X", f"lua_script:{script}", "-r", str(pcap)]
    command += ["-T", "json", "--no-duplicate-keys", "-J", "emsdp"]
    env = {**os.environ, "HOME": str(workdir), "WIRESHARK_CONFIG_DIR": str(workdir)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stderr}"
    assert "Lua" not in done.stderr, f"tshark reported a Lua problem:\n{done.stderr}"
    return [frame["_source"]["layers"] for frame in json.loads(done.stdout)], " ".join(command)


def _as_list(value: Any) -> list[Any]:
    return [] if value is None else value if isinstance(value, list) else [value]


def _flatten(node: dict[str, Any], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Field name -> value, subtrees (`<field>_tree`) merged in."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in skip:
            continue
        if isinstance(value, dict):
            out.update(_flatten(value))
        else:
            out[key] = value
    return out


def _kind(problem: str) -> str:
    """What is wrong and where, without the detail after the colon: for a cut message the codec counts the octets
    it needs with the binding's default scheme, the Lua with the scheme in force."""
    return problem.split(":")[0]


# ---- the comparison ----------------------------------------------------------------------------------------


def _expected_tlv(layout: Layout, entry: dict[str, Any]) -> dict[str, Any]:
    """The Wireshark fields a TLV's codec entry should produce: ints, bools, str, and bytes for byte fields."""
    fields: dict[str, Any] = {"emsdp.tlv.tag": entry["tag"], "emsdp.tlv.value": bytes.fromhex(entry["value"])}
    if entry["name"] is not None:
        fields["emsdp.tlv.name"] = entry["name"]
    # A TLV cut before its length field has none on the wire; the codec's view shows scapy's length of the value.
    if entry["length"] is not None and _kind(entry.get("problem", "")) != "truncated TLV":
        fields["emsdp.tlv.length"] = entry["length"]
    if "decoded" not in entry:
        return fields
    decoded, kind = entry["decoded"], VALUE_KINDS.get(entry["name"], "octets")
    if kind == "imsi":
        fields["emsdp.imsi"] = decoded
    elif kind == "ue_config":
        if decoded["release"] is not None:
            fields["emsdp.ue_config.release"] = decoded["release"]
        agreements = decoded["key_agreements"]
        fields["emsdp.ue_config.key_agreements"] = sum(layout.key_agreement_bits[n] for n in agreements)
        for name in layout.key_agreement_bits:
            fields[f"emsdp.ue_config.key_agreement.{name}"] = name in agreements
        fields["emsdp.ue_config.confidentiality"] = decoded["confidentiality_requested"]
        if "unknown_bits" in decoded:
            fields["emsdp.ue_config.unknown_bits"] = decoded["unknown_bits"]
    elif kind == "hse_config":
        tables = {"service": layout.services, "mode": layout.modes, "key_agreement": layout.key_agreement_bits}
        for name in layout.hse_config_fields:
            value = decoded[name]
            fields[f"emsdp.hse_config.{name}"] = tables[name][value] if isinstance(value, str) else value
        if "start_confirmation_required" in decoded:
            fields["emsdp.hse_config.start_confirmation_required"] = decoded["start_confirmation_required"]
    elif kind == "utf8":
        fields["emsdp.eas_id"] = decoded
    elif kind == "serving_network":
        fields["emsdp.serving_network"] = decoded
    elif kind in ("cause", "command"):  # the code; its name is the value string, which JSON does not show
        fields["emsdp.cause" if kind == "cause" else "emsdp.rejected_cmd"] = bytes.fromhex(entry["value"])[0]
    return fields


def _expected_top(scheme: int, view: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {"emsdp.scheme": scheme}
    if view["plane"] is None:
        return fields
    fields["emsdp.plane"] = view["plane"]
    fields.update({f"emsdp.{name}": value for name, value in view["header"].items()})
    if view["plane"] == "cp":
        fields["emsdp.cmd"] = view["command"]["code"]
        if view["command"]["name"] is not None:
            fields["emsdp.cmd_name"] = view["command"]["name"]
    else:
        fields["emsdp.data"] = bytes.fromhex(view["data"])
    if view["mac"] is not None:
        fields["emsdp.mac"] = bytes.fromhex(view["mac"])
    return fields


def _diff(where: str, expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Field-by-field differences; tshark's JSON gives every value as text ("0x11", "1", "0a:0b", ...)."""
    out = []
    for key in sorted(expected.keys() | actual.keys()):
        want, got = expected.get(key), actual.get(key)
        if key not in actual or key not in expected or not isinstance(got, str):
            same = False
        elif isinstance(want, bytes):
            same = got.replace(":", "") == want.hex()
        elif isinstance(want, int):  # bools too: tshark shows them as 1 / 0
            same = got.isascii() and int(got, 0) == int(want)
        else:  # Wireshark's string fields end at the first NUL
            same = got == want.partition("\0")[0]
        if not same:
            shown = want.hex() if isinstance(want, bytes) else want
            out.append(f"{where} {key}: codec {'(absent)' if key not in expected else repr(shown)}, "
                       f"tshark {'(absent)' if key not in actual else repr(got)}")  # fmt: skip
    return out


def compare(layout: Layout, expected: list[tuple[int, dict[str, Any]]], frames: list[dict[str, Any]]) -> list[str]:
    """Every difference between tshark's frames and the codec's views, one line each (empty: they agree)."""
    if len(frames) != len(expected):
        return [f"tshark shows {len(frames)} frames, the pcap has {len(expected)}"]
    mismatches = []
    for number, ((scheme, view), layers) in enumerate(zip(expected, frames, strict=True), start=1):
        where = f"frame {number}:"
        if errors := [key for key in layers if key.startswith("Lua Error")]:
            mismatches.append(f"{where} {errors}")
        if "emsdp" not in layers:
            mismatches.append(f"{where} no emsdp layer (layers: {list(layers)})")
            continue
        tree = layers["emsdp"]
        top = _flatten(tree, skip=("emsdp.tlv", "emsdp.problem", "emsdp.problem_tree"))
        mismatches += _diff(where, _expected_top(scheme, view), top)
        tlvs = _as_list(tree.get("emsdp.tlv"))
        if len(tlvs) != len(view.get("tlvs", [])):
            mismatches.append(f"{where} codec has {len(view.get('tlvs', []))} TLVs, tshark {len(tlvs)}")
        for index, (entry, tlv) in enumerate(zip(view.get("tlvs", []), tlvs, strict=False)):
            actual = _flatten(tlv, skip=("emsdp.tlv.problem",))
            mismatches += _diff(f"{where} TLV {index}", _expected_tlv(layout, entry), actual)
            if entry["name"] == "suci":  # the Lua shows SUCI octets without decoding them
                continue
            want = _kind(entry["problem"]) if "problem" in entry else None
            got = _kind(tlv["emsdp.tlv.problem"]) if "emsdp.tlv.problem" in tlv else None
            if want != got:
                mismatches.append(f"{where} TLV {index} problem: codec {entry.get('problem')!r}, tshark {got!r}")
        want_problems = [_kind(p) for p in view["problems"]]
        got_problems = [_kind(p) for p in _as_list(tree.get("emsdp.problem"))]
        if want_problems != got_problems:
            mismatches.append(f"{where} problems: codec {view['problems']}, tshark {tree.get('emsdp.problem')}")
    return mismatches


# ---- tests -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Codec, list[Frame], Path]:
    codec = Codec()
    frames = exchange(codec)
    return codec, frames, write_pcap(tmp_path_factory.mktemp("pcap") / "session.pcap", frames)


@needs_tshark
def test_tshark_decodes_every_frame_as_the_codec_does(session, tmp_path):
    codec, _, pcap = session
    expected = expected_views(codec, pcap)
    assert [scheme for scheme, _ in expected] == [1, 1] + [2] * 13 + [1, 1, 1], "the exchange lost its schemes"
    flagged = [n for n, (_, view) in enumerate(expected, 1) if view["problems"]]
    assert flagged == [10, 11, 12, 13, 14, 17], "the malformed frames are not the ones the exchange meant"
    layers, command = run_tshark(codec.layout, pcap, tmp_path)
    mismatches = compare(codec.layout, expected, layers)
    assert not mismatches, f"{command}\n" + "\n".join(mismatches)
    # the decoded views the dissector adds, beyond the raw fields compared above
    assert layers[0]["emsdp"]["emsdp.tlv"][0]["emsdp.imsi"] == "001010123456789"
    assert layers[0]["emsdp"]["emsdp.tlv"][2]["emsdp.eas_id"] == "eas.example.com"
    assert "emsdp.tlv.problem" in layers[14]["emsdp"]["emsdp.tlv"], "the IMSI's wrong parity is not shown"


@needs_tshark
def test_a_dissector_from_another_layout_is_caught(session, tmp_path):
    """The comparison is not vacuous: a Session ID of 24 bits instead of 16 shifts every field after it."""
    codec, _, pcap = session
    wrong = Layout.from_binding(load_binding({"emsdp.header.session_id_bits": 24}))
    layers, _ = run_tshark(wrong, pcap, tmp_path)
    mismatches = compare(codec.layout, expected_views(codec, pcap), layers)
    assert any("emsdp.session_id" in m for m in mismatches), mismatches


@needs_tshark
def test_tshark_and_codec_agree_on_mutated_messages(session, tmp_path):
    """Malformed input never makes the Lua fail, and both sides flag the same problems: a fixed-seed thousand
    mutations (octets overwritten, bits flipped, cut short, random) of the exchange, on three flows so that
    mutated Session Starts move schemes around. Empty datagrams are left out: Wireshark's UDP dissector does
    not hand an empty payload on."""
    codec, frames, _ = session
    rng = random.Random(33163)
    mutated: list[Frame] = []
    while len(mutated) < 1000:
        payload = bytearray(rng.choice(frames)[0])
        roll = rng.random()
        if roll < 0.3:
            for _ in range(rng.randint(1, 3)):
                payload[rng.randrange(len(payload))] = rng.randrange(256)
        elif roll < 0.6:
            payload[rng.randrange(len(payload))] ^= 1 << rng.randrange(8)
        elif roll < 0.8:
            payload = payload[: rng.randrange(len(payload) + 1)]
        else:
            payload = bytearray(rng.randbytes(rng.randint(1, 40)))
        if payload:
            ue = ("127.0.0.1", 40000 + rng.randrange(3))
            mutated.append((bytes(payload), *((ue, ("127.0.0.1", codec.layout.udp_port))[:: rng.choice((1, -1))])))
    pcap = write_pcap(tmp_path / "mutated.pcap", mutated)
    layers, command = run_tshark(codec.layout, pcap, tmp_path)
    mismatches = compare(codec.layout, expected_views(codec, pcap), layers)
    assert not mismatches, f"{command}\n" + "\n".join(mismatches[:50])


def test_generated_file_follows_the_binding_and_is_deterministic():
    default, changed = Layout.from_binding(load_binding()), Layout.from_binding(load_binding(OVERRIDES))
    text = lua_dissector(changed)
    assert text == lua_dissector(Layout.from_binding(load_binding(OVERRIDES)))
    assert text != lua_dissector(default)
    assert "local UDP_PORT = 4000" in text and 'DissectorTable.get("udp.port"):add(UDP_PORT, emsdp)' in text
    assert '[34] = "suci"' in text, "tag 0x22 is not named suci"
    assert "UDP port 4000" in text.split("\n\n")[0], "the header comment does not summarise the binding"


@needs_tshark
def test_tshark_follows_a_reshaped_binding(tmp_path):
    """Port 4000 and SUCI on tag 0x22, plus every other shape the Lua must take from the layout: a version
    field, 2-octet tags and lengths, a PLMN-id serving network, no release octet, and a 39-bit counter that
    needs Wireshark's 64-bit fields."""
    counters = [7, 15, 23, 39]  # with a 4-bit version the header stays whole octets
    reshaped = {
        "emsdp.header.fields": ["version", "up_cp", "rfu", "key_id", "counter", "session_id"],
        "emsdp.header.version_bits": 4,
        "emsdp.counters.cp_bits_by_scheme": counters,
        "emsdp.counters.up_bits_by_scheme": counters,
        "emsdp.tlv.tag_bytes": 2,
        "emsdp.tlv.length_bytes": 2,
        "emsdp.serving_network.encoding": "plmn_id",
        "emsdp.ue_config.release_octet": False,
    }
    codec = Codec(load_binding(OVERRIDES, reshaped))
    layout, hse = codec.layout, ("127.0.0.1", 4000)
    suci = build_suci(Suci(0, "001", "01", "0", 0, 0, bytes.fromhex("21436587")), layout.suci_format)
    request = [
        ("suci", suci),
        ("ue_config", encode_ue_config(layout, 17, ["umts"], False)),
        ("serving_network", encode_serving_network(layout, "00f110")),
    ]
    start = [("hse_config", encode_hse_config(layout, counter_scheme=3)), ("cause", b"\x01\x02")]
    frames = [
        (codec.cp("session_request", request), UE, hse),
        (codec.cp("session_start", start, session_id=9), hse, UE),
        (codec.cp("session_terminate_request", scheme=3, key_id=1, counter=2**34 + 5, session_id=9), UE, hse),
        (codec.up(b"data", scheme=3, key_id=1, counter=2**39 - 1, session_id=9), UE, hse),
    ]
    pcap = write_pcap(tmp_path / "port4000.pcap", [(bytes(m), src, dst) for m, src, dst in frames])
    expected = expected_views(codec, pcap)
    assert [scheme for scheme, _ in expected] == [1, 1, 3, 3]
    layers, command = run_tshark(layout, pcap, tmp_path)
    mismatches = compare(layout, expected, layers)
    assert not mismatches, f"{command}\n" + "\n".join(mismatches)
    assert layers[0]["emsdp"]["emsdp.tlv"][0]["emsdp.tlv.name"] == "suci"
    assert layers[0]["emsdp"]["emsdp.tlv"][2]["emsdp.serving_network"] == "00f110"
    assert layers[3]["emsdp"]["emsdp.counter"] == str(2**39 - 1)
