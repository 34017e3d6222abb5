"""Message protection: the AES-CMAC primitive against 128-EIA2 data, COUNT packing, MAC and CTR cipher."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.binding import load_binding
from conformance.crypto.protect import DOWNLINK, UPLINK, Protection, mac_primitive
from tests.kat import check_known_answer, h, load_fixture

EIA2 = load_fixture("kdf_ts33220.yaml")["eia2"]
P = Protection.from_binding(load_binding())


def test_aes_cmac_matches_128_eia2_test_data():
    """128-EIA2 = first 32 bits of AES-CMAC over COUNT ‖ BEARER(5) DIRECTION(1) 0(26) ‖ MESSAGE."""

    def eia2(ik, count, message):
        block = count + bytes([EIA2["bearer"] << 3 | EIA2["direction"] << 2, 0, 0, 0]) + message
        return mac_primitive("aes-cmac", ik, block)[:4]

    check_known_answer(
        eia2, {"ik": h(EIA2["ik"]), "count": h(EIA2["count"]), "message": h(EIA2["message"])}, h(EIA2["mac"])
    )


def test_count_packs_the_binding_layout():
    # default layout: session_id (16 bits), counter (given width), direction (1 bit, uplink = 0)
    assert P.count(0x1234, 0x5, 11, UPLINK) == (0x1234 << 12 | 0x5 << 1 | 0).to_bytes(8, "big")
    assert P.count(0x1234, 0x5, 11, DOWNLINK) == (0x1234 << 12 | 0x5 << 1 | 1).to_bytes(8, "big")
    other = Protection.from_binding(load_binding({"protection.count.layout": ["counter", "session_id"]}))
    assert other.count(0x1234, 0x5, 11, UPLINK) == (0x5 << 16 | 0x1234).to_bytes(8, "big")


def test_count_alignment_from_the_binding():
    """The doc's example of protection.count.align: the same 28 bits right-aligned (lsb) or left-aligned (msb)."""
    assert P.count(0x1234, 0x5, 11, UPLINK) == bytes.fromhex("000000000123400a")
    left = Protection.from_binding(load_binding({"protection.count.align": "msb"}))
    assert left.count(0x1234, 0x5, 11, UPLINK) == bytes.fromhex("123400a000000000")
    assert left.count(0x1234, 0x5, 11, DOWNLINK) == bytes.fromhex("123400b000000000")
    assert left.count(0xFFFF, 0x7FF, 11, DOWNLINK) == ((1 << 28) - 1 << 36).to_bytes(8, "big")


@pytest.mark.parametrize("algorithm", ["aes-cmac", "hmac-sha256"])
def test_mac_take_keeps_the_first_or_the_last_octets(algorithm):
    key, count = bytes(range(16)), P.count(1, 1, 11, UPLINK)
    full = mac_primitive(algorithm, key, count + b"head" + b"body")
    first = Protection.from_binding(load_binding({"protection.mac.algorithm": algorithm}))
    last = Protection.from_binding(load_binding({"protection.mac.algorithm": algorithm, "protection.mac.take": "lsb"}))
    assert first.mac(key, count, b"head", b"body") == full[:8]
    assert last.mac(key, count, b"head", b"body") == full[-8:]
    assert last.verify(key, count, b"head", b"body", full[-8:]) and not first.verify(
        key, count, b"head", b"body", full[-8:]
    )


def test_mac_covers_what_the_binding_says():
    key, count = bytes(16), P.count(1, 1, 11, UPLINK)
    mac = P.mac(key, count, b"head", b"body")
    assert len(mac) == 8 and P.verify(key, count, b"head", b"body", mac)
    assert not P.verify(key, count, b"HEAD", b"body", mac)  # header covered by default
    body_only = Protection.from_binding(load_binding({"protection.mac.covers": "body"}))
    assert body_only.verify(key, count, b"HEAD", b"body", body_only.mac(key, count, b"head", b"body"))


@pytest.mark.parametrize("changed", ["key", "count", "header", "body"])
def test_mac_depends_on_every_input(changed):
    args = {"key": bytes(16), "count": P.count(3, 4, 11, UPLINK), "header": b"\x10\x05", "body": b"payload"}
    mac = P.mac(**args)
    args[changed] = bytes([args[changed][0] ^ 1]) + args[changed][1:]
    assert P.mac(**args) != mac


def test_directions_get_different_macs_and_keystreams():
    key = bytes(range(16))
    up, down = P.count(7, 1, 11, UPLINK), P.count(7, 1, 11, DOWNLINK)
    assert P.mac(key, up, b"h", b"b") != P.mac(key, down, b"h", b"b")
    assert P.crypt(key, up, bytes(32)) != P.crypt(key, down, bytes(32))


def test_hmac_algorithm_from_the_binding():
    hm = Protection.from_binding(load_binding({"protection.mac.algorithm": "hmac-sha256", "protection.mac.bits": 96}))
    assert len(hm.mac(bytes(32), bytes(8), b"h", b"b")) == 12
    with pytest.raises(ValueError, match="unknown MAC algorithm"):
        mac_primitive("crc32", b"", b"")


@given(
    st.binary(min_size=16, max_size=16), st.integers(0, 2**16 - 1), st.integers(0, 2**11 - 1), st.binary(max_size=300)
)
def test_ctr_round_trips_and_changes_the_data(key, session_id, counter, data):
    count = P.count(session_id, counter, 11, UPLINK)
    sealed = P.crypt(key, count, data)
    assert P.crypt(key, count, sealed) == data
    if len(data) >= 8:
        assert sealed != data


def test_count_layout_that_cannot_fit_64_bits_is_refused():
    from conformance.binding import BindingError

    with pytest.raises(BindingError, match="fit 64 bits"):
        load_binding(
            {
                "emsdp.header.session_id_bits": 32,
                "emsdp.counters.cp_bits_by_scheme": [3, 11, 19, 64],
                "emsdp.counters.up_bits_by_scheme": [3, 11, 19, 64],
            }
        )
