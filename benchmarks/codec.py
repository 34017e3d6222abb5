"""Codec throughput: build and dissect N messages of each EMSDP kind with the scapy layers, print messages per
second; then the same messages with the fast codec (conformance/emsdp/fast.py, FAST_FACTOR times as many: what
`Codec` builds and decodes with on the hot path), and how many times faster it is. Target (issue #14): the fast
codec >= 50,000 messages/s built and dissected.

    python benchmarks/codec.py [N]

For scale: scapy alone dissects a small custom layer at about 5,500 packets/s on the project's 2-core
machines (shared/research/deps.md).
"""

from __future__ import annotations

import sys
import time

from conformance.emsdp import Codec, Layout
from conformance.emsdp.fast import FastCodec
from conformance.emsdp.values import encode_hse_config, encode_imsi, encode_ue_config

FAST_FACTOR = 10  # the fast codec runs this many times N messages per kind, for a steadier clock


class Builder:
    """Records a message's arguments instead of building it: the same kinds are built by both codecs."""

    def __init__(self, layout: Layout):
        self.layout = layout

    def cp(self, *args: object, **kwargs: object) -> tuple[str, tuple, dict]:
        return "cp", args, kwargs

    def up(self, *args: object, **kwargs: object) -> tuple[str, tuple, dict]:
        return "up", args, kwargs


def kinds(codec: Codec) -> dict[str, object]:
    """Each kind as a scapy packet: the octets the codec builds, dissected by the scapy layers."""
    built = arguments(codec.layout).items()
    return {name: codec.dissect(bytes(getattr(codec, plane)(*args, **kwargs))) for name, (plane, args, kwargs) in built}


def arguments(layout: Layout) -> dict[str, tuple[str, tuple, dict]]:
    """Each kind's (plane, positional and keyword arguments) for either codec's `cp` / `up`."""
    codec = Builder(layout)
    mac = {"key_id": 1, "counter": 5, "session_id": 7, "mac": bytes(layout.mac_bytes)}
    return {
        "session_request": codec.cp(
            "session_request",
            [
                ("imsi", encode_imsi("001010123456789")),
                ("ue_config", encode_ue_config(layout, 17, ["5g_aka"], False)),
                ("enterprise_setup", b"eas.example.com"),
                ("serving_network", b"5G:mnc001.mcc001.3gppnetwork.org"),
            ],
        ),
        "session_start": codec.cp(
            "session_start",
            [
                ("rand", bytes(16)),
                ("autn", bytes(16)),
                ("hse_config", encode_hse_config(layout, service="up_integrity", counter_scheme=1, mac_bits=64)),
                ("request_checksum", bytes(layout.checksum_bytes)),
            ],
            session_id=7,
        ),
        "session_start_confirmation": codec.cp("session_start_confirmation", [("res", bytes(8))], **mac),
        "session_terminate_request": codec.cp("session_terminate_request", [], **mac),
        "session_terminate_response": codec.cp("session_terminate_response", [], **mac),
        "manage_keys_request": codec.cp("manage_keys_request", [("rand", bytes(16)), ("autn", bytes(16))], **mac),
        "manage_keys_response": codec.cp("manage_keys_response", [("res", bytes(8))], **mac),
        "message_reject": codec.cp("message_reject", [("cause", b"\x08")], **mac),
        "user_plane_data": codec.up(bytes(48), **mac),
    }


def rate(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def main(n: int = 2000) -> None:
    codec = Codec()
    print(f"EMSDP codec, {n} messages per kind (messages/s)")
    print(f"{'kind':28} {'octets':>6} {'build':>9} {'dissect':>9} {'describe':>9}")
    totals = []
    for name, message in kinds(codec).items():
        raw = bytes(message)
        cls = type(message)
        fields = message.fields.copy()
        build = rate(lambda cls=cls, fields=fields: bytes(cls(**fields)), n)
        if bytes(cls(**fields)) != raw:
            raise SystemExit(f"{name}: scapy rebuilds other octets")
        dissect = rate(lambda raw=raw: codec.dissect(raw), n)
        describe = rate(lambda packet=message: codec.describe(packet), n)
        totals.append((build, dissect))
        print(f"{name:28} {len(raw):6} {build:9.0f} {dissect:9.0f} {describe:9.0f}")
    mean = [sum(t[i] for t in totals) / len(totals) for i in (0, 1)]
    print(f"{'mean':28} {'':6} {mean[0]:9.0f} {mean[1]:9.0f}")
    fast_mean = fast_rates(codec, n * FAST_FACTOR, totals)
    print(
        f"scapy {mean[0]:,.0f} built/s, {mean[1]:,.0f} dissected/s; fast {fast_mean[0]:,.0f} built/s, "
        f"{fast_mean[1]:,.0f} dissected/s: {fast_mean[0] / mean[0]:.0f}x and {fast_mean[1] / mean[1]:.0f}x"
    )


def fast_rates(codec: Codec, n: int, scapy: list[tuple[float, float]]) -> list[float]:
    """Build (from names, through FastCodec.cp / up) and decode each kind with the fast codec; print the rates
    and the ratios to scapy's (`scapy`: its (build, dissect) per kind); return the mean rates."""
    fast = FastCodec(codec.layout)
    print(f"\nfast codec, {n} messages per kind (messages/s; x: times scapy's rate)")
    print(f"{'kind':28} {'octets':>6} {'build':>9} {'dissect':>9} {'build x':>8} {'dissect x':>9}")
    totals = []
    for (name, (plane, args, kwargs)), (scapy_build, scapy_dissect) in zip(
        arguments(fast.layout).items(), scapy, strict=True
    ):
        encode = getattr(fast, plane)
        raw = encode(*args, **kwargs)
        packet = codec.dissect(raw)
        if raw != bytes(type(packet)(**packet.fields)):
            raise SystemExit(f"{name}: the fast codec builds other octets than scapy")
        build = rate(lambda encode=encode, args=args, kwargs=kwargs: encode(*args, **kwargs), n)
        dissect = rate(lambda raw=raw: fast.decode(raw), n)
        totals.append((build, dissect))
        ratios = f"{build / scapy_build:8.0f} {dissect / scapy_dissect:9.0f}"
        print(f"{name:28} {len(raw):6} {build:9.0f} {dissect:9.0f} {ratios}")
    mean = [sum(t[i] for t in totals) / len(totals) for i in (0, 1)]
    print(f"{'mean':28} {'':6} {mean[0]:9.0f} {mean[1]:9.0f}")
    return mean


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
