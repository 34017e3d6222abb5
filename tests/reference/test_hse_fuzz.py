"""Arbitrary datagrams at one running reference HSE: none may break its handler, and it keeps serving.

Three kinds of datagram, from a bounded Hypothesis budget:
- plain: random bytes (0..600 octets) and mutations of a valid Session Request with an IMSI or a profile A
  SUCI (bit flips, truncations, TLV length fields changed, octets appended);
- forged: well-formed CP or UP messages with any command, Key ID, counter and TLVs and a zero MAC, on a live
  or a low Session ID (they must be rejected or discarded);
- sealed: messages under the real keys of a session an "insider" UE holds (valid MAC, fresh or replayed
  counter) with any uplink command and well-sized TLVs, so that the handlers behind the MAC check are fuzzed.

Every example is followed by a barrier: a probe from another socket that the HSE always answers (an unknown
command, rejected). The HSE reads its one socket in order, so once the probe's answer is back the datagram has
been handled, and `errors` is checked for that example (Hypothesis shrinks a failure to the smallest datagram
that breaks the handler).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.crypto.suci import PROFILE_A, Suci, build_suci, conceal, encode_msin
from conformance.emsdp.codec import Codec
from conformance.emsdp.values import encode_imsi, encode_serving_network, encode_ue_config
from conformance.profile import load_profile
from conformance.reference.hse import HseServer
from conformance.roles.ue import Credentials, Ue

PROFILE = load_profile(Path(__file__).resolve().parents[2] / "profiles" / "reference-hse.yaml")
CODEC = Codec(PROFILE.binding)
LAYOUT = CODEC.layout
EAS = "eas.example.com"
UNKNOWN_COMMAND = next(code for code in range(0x7F, 0x100) if code not in LAYOUT.command_names())
COUNTER_LIMIT = (1 << LAYOUT.counter_bits["cp"][LAYOUT.default_scheme]) - 1
UPLINK_COMMANDS = [
    "session_start_confirmation",
    "manage_keys_request",
    "manage_keys_response",
    "session_terminate_request",
    "session_terminate_response",
    "message_reject",
    "session_start",  # not expected from a UE
]


def _session_request(identity: tuple[str, bytes]) -> bytes:
    tlvs = [
        identity,
        ("ue_config", encode_ue_config(LAYOUT, PROFILE.binding["release.ts33163"], ["umts", "5g_aka"], False)),
        ("enterprise_setup", EAS.encode()),
        ("serving_network", encode_serving_network(LAYOUT, PROFILE.pixit.serving_network_name)),
    ]
    return bytes(CODEC.cp("session_request", tlvs, key_id=0, counter=0, session_id=0))


def _suci() -> bytes:
    """A profile A SUCI of a subscriber the reference HSE knows (001 01 0123456789)."""
    key = next(k for k in PROFILE.pixit.home_network_keys if k.profile == "A")
    output = conceal(encode_msin("0123456789"), key.public_key, "A")
    return build_suci(Suci(0, "001", "01", "0", PROFILE_A, key.id, output), LAYOUT.suci_format)


VALID = [
    _session_request(("imsi", encode_imsi(PROFILE.pixit.subscribers[0].imsi))),
    _session_request(("suci", _suci())),
]


def _length_field_offsets(message: bytes) -> list[int]:
    """Where each TLV's length field starts in a well-formed CP message of the default scheme."""
    offset = LAYOUT.header_bytes("cp", LAYOUT.default_scheme) + 1  # header and command
    offsets = []
    while offset < len(message):
        at = offset + LAYOUT.tag_bytes
        offsets.append(at)
        offset = at + LAYOUT.length_bytes + int.from_bytes(message[at : at + LAYOUT.length_bytes], "big")
    return offsets


def _flip(message: bytes, bits: list[int]) -> bytes:
    data = bytearray(message)
    for bit in bits:
        data[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(data)


def _set_length(message: bytes, at: int, value: int) -> bytes:
    return message[:at] + value.to_bytes(LAYOUT.length_bytes, "big") + message[at + LAYOUT.length_bytes :]


def _mutations(message: bytes) -> st.SearchStrategy[bytes]:
    """Bit flips, truncations, TLV length fields changed, octets appended."""
    lengths = _length_field_offsets(message)
    assert len(lengths) == 4  # the four TLVs of the request
    return st.one_of(
        st.lists(st.integers(0, len(message) * 8 - 1), min_size=1, max_size=8).map(lambda b: _flip(message, b)),
        st.integers(0, len(message) - 1).map(lambda n: message[:n]),
        st.tuples(st.sampled_from(lengths), st.integers(0, (1 << (8 * LAYOUT.length_bytes)) - 1)).map(
            lambda change: _set_length(message, *change)
        ),
        st.binary(min_size=1, max_size=64).map(lambda tail: message + tail),
    )


def _tlv(name: str, *, well_sized: bool = False) -> st.SearchStrategy[tuple[int, bytes]]:
    """A TLV of a known tag whose value has a size the binding allows (else it never gets past the codec),
    or, unless `well_sized`, any size."""
    low, high = LAYOUT.value_size(name) or (0, 24)
    value = st.binary(min_size=low, max_size=min(high, 64))
    return st.tuples(st.just(LAYOUT.tags[name]), value if well_sized else value | st.binary(max_size=24))


TAG_NAMES = st.sampled_from(sorted(LAYOUT.tags))
PLAIN = st.binary(max_size=600) | st.sampled_from(VALID).flatmap(_mutations)
FORGED = st.fixed_dictionaries(
    {
        "plane": st.sampled_from(["cp", "up"]),
        "cmd": st.sampled_from([*sorted(LAYOUT.commands.values()), UNKNOWN_COMMAND]),
        "key_id": st.integers(0, 7),
        "counter": st.integers(0, COUNTER_LIMIT),
        # ("live", i): the i-th live session (modulo their number) when sent; ("id", n): Session ID n
        "session": st.tuples(st.just("live"), st.integers(0, 15)) | st.tuples(st.just("id"), st.integers(0, 8)),
        "tlvs": st.lists(TAG_NAMES.flatmap(_tlv), max_size=4),
        "data": st.binary(max_size=64),
    }
)
SEALED = st.fixed_dictionaries(
    {
        "plane": st.sampled_from(["cp", "up"]),
        "command": st.sampled_from(UPLINK_COMMANDS),
        "tlvs": st.lists(TAG_NAMES.flatmap(lambda name: _tlv(name, well_sized=True)), max_size=3),
        "data": st.binary(max_size=64),
        "counter": st.none() | st.just(0),  # the next counter, or a replayed one
    }
)
DATAGRAMS = st.one_of(
    PLAIN.map(lambda raw: ("plain", raw)), FORGED.map(lambda f: ("forged", f)), SEALED.map(lambda f: ("sealed", f))
)


def forged(fields: dict[str, Any], live: list[int]) -> bytes:
    kind, n = fields["session"]
    session_id = (live[n % len(live)] if live else 1) if kind == "live" else n
    header = {"key_id": fields["key_id"], "counter": fields["counter"], "session_id": session_id}
    header["mac"] = bytes(LAYOUT.mac_bytes)
    if fields["plane"] == "up":
        return bytes(CODEC.up(fields["data"], **header))
    return bytes(CODEC.cp(fields["cmd"], [CODEC.layers.tlv(tag=t, value=v) for t, v in fields["tlvs"]], **header))


def sealed(fields: dict[str, Any], ue: Ue) -> bytes:
    if fields["plane"] == "up":
        return bytes(ue.user_data(fields["data"], counter=fields["counter"]))
    tlvs = [CODEC.layers.tlv(tag=t, value=v) for t, v in fields["tlvs"]]
    return bytes(ue.protected(fields["command"], tlvs, counter=fields["counter"]))


def ue_for(server: HseServer, subscriber: int) -> Ue:
    sub = PROFILE.pixit.subscribers[subscriber]
    return Ue(
        PROFILE.binding,
        Credentials.from_subscriber(sub),
        server.address,
        snn=PROFILE.pixit.serving_network_name,
        eas_id=EAS,
    )


def drain(sock: socket.socket) -> None:
    """Drop whatever the HSE has answered on this socket (it is idle after the barrier)."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        while True:
            sock.recv(65535)
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(timeout)


@pytest.fixture(scope="module")
def hse():
    with HseServer(PROFILE, port=0) as server:
        yield server


def test_no_datagram_breaks_the_hse_and_it_keeps_serving(hse):
    fuzzer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    prober = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    prober.settimeout(2.0)
    probe = bytes(CODEC.cp(UNKNOWN_COMMAND, [], key_id=0, counter=0, session_id=0))
    insider = ue_for(hse, 1)  # holds a real session, so that sealed messages reach the handlers behind the MAC

    def barrier() -> None:
        prober.sendto(probe, hse.address)
        answer, _ = prober.recvfrom(65535)  # the HSE has handled everything sent before the probe
        assert LAYOUT.command_names().get(CODEC.decode(answer).cmd) == "message_reject"

    def insider_session() -> None:
        """(Re)start the insider's session if an earlier example ended it (terminate, wrong RES, ...)."""
        live = hse.protocol.sessions.get(insider.session.id) if insider.session else None
        if live is None or live.subscriber.imsi != insider.credentials.imsi:
            drain(insider.sock)
            insider.start()
            barrier()

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(DATAGRAMS)
    def throw(drawn: tuple[str, Any]) -> None:
        kind, value = drawn
        if kind == "sealed":
            insider_session()
            source, datagram = insider.sock, sealed(value, insider)
        else:
            datagram = forged(value, sorted(hse.protocol.sessions)) if kind == "forged" else value
            source = fuzzer
        source.sendto(datagram, hse.address)
        barrier()
        assert hse.protocol.errors == 0, f"{kind} datagram {datagram.hex()} broke the handler"
        drain(fuzzer)
        drain(insider.sock)

    try:
        throw()
    finally:
        fuzzer.close()
        prober.close()
        insider.close()

    with ue_for(hse, 0) as ue:
        session = ue.start()
        assert session.checksum_ok
        ue.send(ue.user_data(b"still serving"))
        assert ue.check_downlink(ue.expect(None)) == b"still serving"
    assert hse.protocol.errors == 0
