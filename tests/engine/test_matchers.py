"""The matchers check what is there, and only with the values they honour (issue 11, item 8).

- An absent field never satisfies a check, `{not: v}` included.
- A check on a TLV's value follows the binding's M/O/C rules (emsdp.tlv_lists.<command>_mandatory): absent and
  mandatory fails; absent and optional is not checked (and noted); present with a wrong value fails.
- tlv_order requires the TLVs it names; from_port, protected and no_problems refuse values they do not honour.

Messages are built with the default binding's codec and dissected from their bytes, as the UE role sees them.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from conformance.binding.loader import load_binding
from conformance.emsdp.codec import Codec
from conformance.emsdp.values import encode_hse_config
from conformance.engine.matchers import MATCHERS, _equal, run_checks
from conformance.engine.results import CheckFailed, Inconclusive
from conformance.roles.ue import ProtocolError

REJECT_NEEDS_REJECTED_COMMAND = {"emsdp": {"tlv_lists": {"message_reject_mandatory": ["cause", "rejected_command"]}}}


def context(*overrides):
    binding = load_binding(*overrides)
    codec = Codec(binding)
    return SimpleNamespace(binding=binding, codec=codec, layout=codec.layout, saved={})


def received(ctx, command, tlvs=(), **header):
    """A CP message as the UE receives it: encoded with the binding's codec, then dissected from its bytes."""
    header = {"key_id": 0, "counter": 0, "session_id": 5, **header}
    return ctx.codec.decode(bytes(ctx.codec.cp(command, list(tlvs), **header)))


def code(ctx, group, name):
    return bytes([ctx.binding[f"emsdp.{group}.{name}"]])


def reject(ctx, cause="unknown_command", rejected=None):
    tlvs = [("cause", code(ctx, "reject_causes", cause))]
    if rejected is not None:
        tlvs.append(("rejected_command", code(ctx, "commands", rejected)))
    return received(ctx, "message_reject", tlvs)


def check(ctx, packet, checks, ue=None):
    run_checks(ctx, ue, packet, checks, "ue")


# ---- an absent field never satisfies a check ----------------------------------------------------------------


@pytest.mark.parametrize("expected", [{"not": 0}, 0, {"not": "x"}])
def test_an_absent_value_satisfies_no_expectation_not_even_a_negated_one(expected):
    with pytest.raises(CheckFailed) as failed:
        _equal("a field", expected, None)
    assert failed.value.observed == "absent"


def test_not_still_compares_a_present_value():
    _equal("a field", {"not": 0}, 5)
    with pytest.raises(CheckFailed):
        _equal("a field", {"not": 0}, 0)


def test_header_not_zero_fails_on_a_message_without_that_field():
    ctx = context()
    truncated = ctx.codec.decode(b"\x00")  # too short to hold a header: no session_id at all
    with pytest.raises(CheckFailed) as failed:
        check(ctx, truncated, {"header": {"session_id": {"not": 0}}})
    assert failed.value.observed == "absent"
    check(ctx, reject(ctx), {"header": {"session_id": {"not": 0}, "key_id": 0}})  # the same check passes on one


# ---- M/O/C: the absence of an optional TLV is never a failure, a wrong value in a present one is -------------


def test_rejected_command_absent_and_optional_is_not_checked_and_is_noted():
    ctx = context()  # the default binding: message_reject_mandatory is [cause]
    check(ctx, reject(ctx), {"cause": "unknown_command", "rejected_command": "session_start_confirmation"})
    assert ctx.saved["unchecked"] == [
        "rejected_command: not checked, the message_reject carries no rejected_command TLV "
        "(optional: not in emsdp.tlv_lists.message_reject_mandatory)"
    ]


def test_rejected_command_present_with_a_wrong_value_fails():
    ctx = context()
    with pytest.raises(CheckFailed) as failed:
        check(ctx, reject(ctx, rejected="session_request"), {"rejected_command": "session_start_confirmation"})
    assert (failed.value.expected, failed.value.observed) == ("session_start_confirmation", "session_request")
    check(ctx, reject(ctx, rejected="session_start_confirmation"), {"rejected_command": "session_start_confirmation"})


def test_rejected_command_absent_fails_where_the_binding_makes_it_mandatory():
    ctx = context(REJECT_NEEDS_REJECTED_COMMAND)
    with pytest.raises(CheckFailed) as failed:
        check(ctx, reject(ctx), {"rejected_command": "session_start_confirmation"})
    assert failed.value.observed == "absent"
    assert "mandatory per emsdp.tlv_lists.message_reject_mandatory" in str(failed.value.expected)


def test_cause_is_mandatory_so_its_absence_fails():
    ctx = context()
    no_cause = received(ctx, "message_reject", [("rejected_command", code(ctx, "commands", "session_request"))])
    with pytest.raises(CheckFailed) as failed:
        check(ctx, no_cause, {"cause": "unknown_command"})
    assert failed.value.observed == "absent"
    with pytest.raises(CheckFailed):
        check(ctx, reject(ctx, cause="invalid_tlv"), {"cause": "unknown_command"})


def test_hse_config_absent_from_a_session_start_fails_it_is_mandatory():
    ctx = context()
    start = received(ctx, "session_start", [("rand", bytes(16)), ("autn", bytes(16))])
    with pytest.raises(CheckFailed, match=re.escape("mandatory per emsdp.tlv_lists.session_start_mandatory")):
        check(ctx, start, {"hse_config": {"service": "up_integrity"}})


# ---- tlv_order requires the TLVs it names --------------------------------------------------------------------


def test_tlv_order_fails_a_message_with_none_of_the_tlvs():
    ctx = context()
    with pytest.raises(CheckFailed) as failed:
        check(ctx, received(ctx, "session_start"), {"tlv_order": "session_start"})
    assert failed.value.observed["missing"] == ["rand", "autn", "hse_config", "request_checksum"]


def test_tlv_order_fails_a_message_missing_some_and_checks_the_order_of_a_full_one():
    ctx = context()
    values = {"rand": bytes(16), "autn": bytes(16), "hse_config": bytes(8), "request_checksum": bytes(4)}
    with pytest.raises(CheckFailed, match="missing"):
        check(ctx, received(ctx, "session_start", [("rand", values["rand"])]), {"tlv_order": "session_start"})
    in_order = received(ctx, "session_start", list(values.items()))
    check(ctx, in_order, {"tlv_order": "session_start"})
    swapped = received(
        ctx, "session_start", [(k, values[k]) for k in ("autn", "rand", "hse_config", "request_checksum")]
    )
    with pytest.raises(CheckFailed) as failed:
        check(ctx, swapped, {"tlv_order": "session_start"})
    assert failed.value.observed == ["autn", "rand", "hse_config", "request_checksum"]


def test_tlv_order_of_a_command_with_no_listed_tlvs_is_inconclusive_not_a_pass():
    ctx = context()
    with pytest.raises(Inconclusive, match="names no TLVs"):
        check(ctx, received(ctx, "session_terminate_response"), {"tlv_order": "session_terminate_response"})


# ---- matchers honour the values they are given -----------------------------------------------------------------


def ue(received_from=("127.0.0.1", 4000), hse=("127.0.0.1", 4000), downlink_error=None):
    def check_downlink(packet):
        if downlink_error:
            raise ProtocolError(downlink_error)
        return b"echo"

    return SimpleNamespace(received_from=received_from, hse=hse, check_downlink=check_downlink)


def test_from_port_checks_the_source_and_takes_only_same():
    ctx = context()
    packet = reject(ctx)
    check(ctx, packet, {"from_port": "same"}, ue())
    with pytest.raises(CheckFailed, match=re.escape("127.0.0.1:4000")):
        check(ctx, packet, {"from_port": "same"}, ue(received_from=("127.0.0.1", 4001)))
    with pytest.raises(CheckFailed) as failed:
        check(ctx, packet, {"from_port": "same"}, ue(received_from=None))
    assert failed.value.observed == "absent"
    with pytest.raises(ValueError, match="takes only 'same'"):  # it used to check nothing
        check(ctx, packet, {"from_port": "other"}, ue(received_from=("10.0.0.1", 1)))


@pytest.mark.parametrize("name", ["protected", "no_problems"])
def test_protected_and_no_problems_take_only_true(name):
    ctx = context()
    packet = reject(ctx)
    check(ctx, packet, {name: True}, ue())
    with pytest.raises(ValueError, match="takes only True"):  # `false` used to be ignored (or skip the check)
        check(ctx, packet, {name: False}, ue())


def test_protected_fails_a_message_whose_mac_does_not_verify():
    ctx = context()
    with pytest.raises(CheckFailed, match="MAC and counter good"):
        check(ctx, reject(ctx), {"protected": True}, ue(downlink_error="MAC does not verify"))


def test_no_problems_fails_a_truncated_message():
    ctx = context()
    with pytest.raises(CheckFailed, match="truncated"):
        check(ctx, ctx.codec.decode(b"\x00"), {"no_problems": True})


def test_an_hse_config_of_the_wrong_size_fails_the_check_not_the_harness():
    """Seen under fault wrong_tlv_length: a 6-octet HSE configuration made the matcher raise (an error verdict)."""
    ctx = context()
    value = encode_hse_config(ctx.layout, service="up_integrity", mode="ue_to_hse", key_agreement="umts")
    start = received(ctx, "session_start", [("hse_config", value[:-2])])
    with pytest.raises(CheckFailed, match="HSE configuration TLV") as failed:
        check(ctx, start, {"hse_config": {"service": "up_integrity"}})
    assert "6 octets" in str(failed.value.observed)


def test_hse_config_keeps_its_list_semantics():
    ctx = context()
    value = encode_hse_config(ctx.layout, service="up_integrity", mode="ue_to_hse", key_agreement="umts")
    start = received(ctx, "session_start", [("hse_config", value)])
    check(ctx, start, {"hse_config": {"service": ["up_integrity", "up_confidential"], "key_agreement": "umts"}})
    with pytest.raises(CheckFailed, match="one of"):
        check(ctx, start, {"hse_config": {"service": ["up_confidential", "key_agreement_only"]}})
    with pytest.raises(CheckFailed):
        check(ctx, start, {"hse_config": {"mode": {"not": "ue_to_hse"}}})


def test_every_matcher_declares_a_schema():
    from conformance.engine.matchers import MATCHER_SCHEMAS

    assert set(MATCHER_SCHEMAS) == set(MATCHERS)


# ---- vector: fresh (a new RAND, key identifier and SQN per AKA run) ------------------------------------------


def vector_ue(sqns):
    """A UE that reads the SQN of a message from a table (RAND -> SQN), as its USIM would from AUTN."""
    return SimpleNamespace(
        credentials=SimpleNamespace(imsi="001010123456789"),
        sqn_of=lambda packet: sqns[bytes(packet.tlvs[0].value)],
    )


def session_start(ctx, rand, session_id=5):
    return received(ctx, "session_start", [("rand", rand), ("autn", bytes(16))], session_id=session_id)


def test_vector_fresh_wants_an_earlier_vector_then_a_new_rand_key_id_and_a_higher_sqn():
    from conformance.engine.matchers import note_vector

    ctx = context()
    first = bytes(16)
    same_lsbs = bytes([1]) + bytes(15)  # another RAND with the same 32 least significant bits: the same key id
    new_sqn_too_low, new = bytes(15) + b"\x07", bytes(15) + b"\x08"
    ue = vector_ue({first: 32, same_lsbs: 64, new_sqn_too_low: 32, new: 33})
    with pytest.raises(Inconclusive, match="no earlier AKA vector"):
        check(ctx, session_start(ctx, first), {"vector": "fresh"}, ue)
    note_vector(ctx, ue, session_start(ctx, first))
    with pytest.raises(CheckFailed, match="a RAND not sent to this subscriber before"):
        check(ctx, session_start(ctx, first, session_id=6), {"vector": "fresh"}, ue)
    with pytest.raises(CheckFailed, match="key identifier"):  # keys.key_identifier.scheme rand_lsb
        check(ctx, session_start(ctx, same_lsbs), {"vector": "fresh"}, ue)
    with pytest.raises(CheckFailed, match="an SQN above every earlier one"):
        check(ctx, session_start(ctx, new_sqn_too_low), {"vector": "fresh"}, ue)
    check(ctx, session_start(ctx, new), {"vector": "fresh"}, ue)
    assert [sqn for _, _, sqn in ctx.saved["vectors"]["001010123456789"]] == [32, 33]  # kept for the next check
    with pytest.raises(ValueError, match="takes only 'fresh'"):
        check(ctx, session_start(ctx, first), {"vector": "stale"}, ue)
