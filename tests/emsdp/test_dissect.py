"""`best-conformance dissect` on a pcap written by the capture tap over real UDP sockets."""

from __future__ import annotations

import json
import socket

import pytest
import yaml

from conformance.binding import load_binding
from conformance.capture.tap import PcapTap, TappedUdpSocket
from conformance.cli import main
from conformance.emsdp import Codec
from conformance.emsdp.trace import read_trace
from conformance.emsdp.values import encode_hse_config, encode_imsi, encode_ue_config


def exchange(codec: Codec) -> list[tuple[str, object]]:
    """Every command of TS 33.163 Table 6.2.6.1-1 and a UP message, as (direction, message); Session Start
    switches the flow to counter scheme 2 and later messages are built with it."""
    layout = codec.layout
    protected = {"scheme": 2, "key_id": 1, "session_id": 7, "mac": bytes(range(layout.mac_bytes))}
    return [
        (
            "ue",
            codec.cp(
                "session_request",
                [
                    ("imsi", encode_imsi("001010123456789")),
                    ("ue_config", encode_ue_config(layout, 17, ["5g_aka"], True)),
                    ("enterprise_setup", b"eas.example.com"),
                    ("serving_network", b"5G:mnc001.mcc001.3gppnetwork.org"),
                ],
            ),
        ),
        (
            "hse",
            codec.cp(
                "session_start",
                [
                    ("rand", bytes(range(16))),
                    ("autn", bytes(range(16, 32))),
                    (
                        "hse_config",
                        encode_hse_config(layout, service="up_integrity", counter_scheme=2, mac_bits=64, flags=1),
                    ),
                    ("request_checksum", b"\xca\xfe\xba\xbe"),
                ],
                session_id=7,
            ),
        ),
        ("ue", codec.cp("session_start_confirmation", [("res", bytes(8))], counter=1, **protected)),
        ("ue", codec.up(b"meter reading 42", counter=2, **protected)),
        ("hse", codec.cp("manage_keys_request", [("rand", bytes(16)), ("autn", bytes(16))], counter=1, **protected)),
        ("ue", codec.cp("manage_keys_response", [("res", bytes(8))], counter=3, **protected)),
        (
            "hse",
            codec.cp("message_reject", [("cause", b"\x08"), ("rejected_command", b"\x31")], counter=2, **protected),
        ),
        ("ue", codec.cp("session_terminate_request", [], counter=4, **protected)),
        ("hse", codec.cp("session_terminate_response", [], counter=3, **protected)),
    ]


@pytest.fixture
def captured(tmp_path):
    """The exchange sent over loopback between a tapped UE socket and a plain HSE socket on a free port."""
    hse = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    hse.bind(("127.0.0.1", 0))
    hse.settimeout(5)
    port = hse.getsockname()[1]
    override = tmp_path / "binding.yaml"
    override.write_text(yaml.safe_dump({"binding": {"transport.udp_port": port}}))
    codec = Codec(load_binding(override))
    messages = exchange(codec)
    pcap = tmp_path / "ue.pcap"
    with PcapTap(pcap) as tap, TappedUdpSocket(tap) as ue, hse:
        ue.settimeout(5)
        for side, message in messages:
            if side == "ue":
                ue.sendto(bytes(message), ("127.0.0.1", port))
                hse.recvfrom(2048)
            else:
                ue.sendto(b"", ("127.0.0.1", port))  # let the HSE learn the UE's address
                _, ue_address = hse.recvfrom(2048)
                hse.sendto(bytes(message), ue_address)
                ue.recvfrom(2048)
    return pcap, override, codec, messages


def test_dissect_json_shows_every_field_of_every_command(captured, capsys):
    pcap, override, codec, messages = captured
    with pytest.raises(SystemExit) as done:
        main(["dissect", str(pcap), "--binding", str(override), "--json"])
    assert done.value.code == 0
    decoded = [m for m in json.loads(capsys.readouterr().out) if m["octets"]]  # drop the empty pokes
    assert len(decoded) == len(messages)
    for view, (side, message) in zip(decoded, messages, strict=True):
        expected = codec.describe(message)
        assert view["src"].endswith(f":{codec.layout.udp_port}") == (side == "hse")
        for key in ("plane", "counter_scheme", "header", "mac", "problems"):
            assert view[key] == expected[key], (key, view)
        if message.plane == "cp":
            assert view["command"] == expected["command"]
            assert view["tlvs"] == expected["tlvs"]
            assert all("decoded" in t for t in view["tlvs"])
        else:
            assert bytes.fromhex(view["data"]) == b"meter reading 42"
    assert [v["counter_scheme"] for v in decoded] == [1, 1] + [2] * 7
    assert decoded[0]["tlvs"][0]["decoded"] == "001010123456789"
    assert decoded[1]["tlvs"][2]["decoded"]["counter_scheme"] == 2


def test_dissect_text_is_one_block_per_message(captured, capsys):
    pcap, override, _, messages = captured
    with pytest.raises(SystemExit):
        main(["dissect", str(pcap), "--binding", str(override)])
    out = capsys.readouterr().out
    for needle in (
        "command: session_request (0x10)",
        "= 001010123456789",
        "= eas.example.com",
        "counter_scheme=2",
        "command: message_reject (0x80)",
        "= invalid_mac",
        "= manage_keys_response",
        "data: " + b"meter reading 42".hex(),
        "MAC: 0001020304050607",
    ):
        assert needle in out, needle
    assert out.count("Frame ") == len(messages) + 4  # and the four empty pokes, flagged
    assert "4 with problems" in out and "! empty datagram" in out


def test_without_the_flow_rule_the_same_pcap_misreads(captured):
    """The per-flow counter scheme matters: read with a fixed scheme, the protected messages come out wrong."""
    pcap, _, codec, _ = captured
    fixed = [m for m in read_trace(pcap, codec) if bytes(m.packet)]
    assert [m.scheme for m in fixed][:3] == [1, 1, 2]
    wrong = [codec.describe(codec.decode(bytes(m.packet), 1)) for m in fixed[2:]]
    right = [codec.describe(m.packet) for m in fixed[2:]]
    assert wrong != right


def test_dissect_reports_unreadable_files(tmp_path, capsys):
    bad = tmp_path / "not.pcap"
    bad.write_text("hello")
    with pytest.raises(SystemExit) as done:
        main(["dissect", str(bad)])
    assert done.value.code == 2
    assert "cannot read as pcap or pcapng" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        main(["dissect", str(bad), "--counter-scheme", "9"])
    assert done.value.code == 2


def test_ethernet_padding_of_short_frames_is_not_read_as_emsdp(tmp_path):
    """Captures from real Ethernet pad frames to 60 octets: the UDP length, not the frame, ends the message."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Padding
    from scapy.utils import wrpcap

    codec = Codec()
    message = bytes(codec.cp("session_terminate_request", []))
    frame = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=40000, dport=codec.layout.udp_port) / message
    padded = frame / Padding(b"\x00" * (60 - len(frame)))
    wrpcap(str(tmp_path / "padded.pcap"), [padded])
    (traced,) = read_trace(tmp_path / "padded.pcap", codec)
    assert bytes(traced.packet) == message and traced.packet.problems == []
