"""The message ladder from real decoded traces: lanes per party, arrows in time order, labels with key fields."""

from __future__ import annotations

import copy
import json

from conformance.report.ladder import HEADER, build_ladder, describe


def trace_of(run, predicate):
    """The decoded trace of the first case of the run whose trace satisfies predicate."""
    for case in run.doc["cases"]:
        path = run.dir / "traces" / f"{case['id']}.json"
        if path.exists():
            trace = json.loads(path.read_text())
            if predicate(trace):
                return trace
    raise AssertionError("no case of the run has such a trace")


def commands(trace):
    return [(m.get("command") or {}).get("name") for m in trace]


def test_request_and_answer_run_between_the_two_parties_in_time_order(runs):
    trace = trace_of(runs["hse_fault"], lambda t: commands(t)[:2] == ["session_request", "session_start"])
    ladder = build_ladder(trace, "hse")
    assert [lane.party for lane in ladder.lanes][-1] == "SUT (HSE)" and ladder.lanes[0].party == "harness (UE)"
    request, answer = ladder.arrows[:2]
    assert request.x1 < request.x2 and answer.x1 > answer.x2, "request goes right, the answer comes back left"
    assert request.y < answer.y and request.label == "session_request" and answer.label == "session_start"
    assert "imsi=001010123456789" in request.fields  # a short decoded value is shown, not the hex
    assert answer.fields.startswith("sid ") and "autn" in answer.fields
    assert ladder.height >= HEADER + len(trace) * 40


def test_a_reject_shows_its_cause(runs):
    trace = trace_of(runs["hse_fault"], lambda t: "message_reject" in commands(t))
    reject = describe(next(m for m in trace if commands([m]) == ["message_reject"]))
    assert reject[0] == "message_reject" and "cause=" in reject[1]


def test_an_undecodable_datagram_is_drawn_and_its_problem_named(runs):
    trace = trace_of(runs["hse_fault"], lambda t: any(m.get("problems") for m in t))
    ladder = build_ladder(trace, "hse")
    flagged = [a for a in ladder.arrows if a.problems]
    assert flagged and all(p in json.loads(a.detail)["problems"] for a in flagged for p in a.problems)


def test_a_reply_from_another_port_gets_a_lane_of_its_own_on_the_sut_side(runs):
    """The reference's reply_from_wrong_port fault, as its pcap shows it: the answer leaves from a new port."""
    trace = copy.deepcopy(
        trace_of(runs["hse_fault"], lambda t: commands(t)[:2] == ["session_request", "session_start"])
    )
    host = trace[1]["src"].rsplit(":", 1)[0]
    trace[1]["src"] = f"{host}:1"
    ladder = build_ladder(trace, "hse")
    assert [lane.party for lane in ladder.lanes] == ["harness (UE)", "SUT (HSE)", "SUT (HSE)"]
    assert ladder.lanes[2].endpoint == f"{host}:1" and ladder.arrows[1].x1 == ladder.lanes[2].x


def test_long_field_lists_are_cut_on_the_arrow_but_kept_whole_below(runs):
    trace = trace_of(runs["hse_fault"], lambda t: "session_start" in commands(t))
    arrow = build_ladder(trace, "hse").arrows[commands(trace).index("session_start")]
    assert len(arrow.short) <= len(arrow.fields)
    assert arrow.short == arrow.fields or (arrow.short.endswith("…") and arrow.fields.startswith(arrow.short[:-1]))


def test_an_unreadable_trace_becomes_a_note_not_an_arrow():
    ladder = build_ladder([{"error": "trace unreadable: truncated pcap"}], "emks")
    assert ladder.empty and ladder.notes == ["trace unreadable: truncated pcap"]


def test_an_emse_talks_dtls_to_the_ue_and_asks_the_key_server(runs):
    run = runs["emse"]
    trace = trace_of(run, lambda t: any("key_server" in m for m in t) and any("dtls" in m for m in t))
    ladder = build_ladder(trace, "emse")
    parties = [lane.party for lane in ladder.lanes]
    assert parties[0] == "harness (UE)" and parties[-2:] == ["SUT (EMSE)", "harness (key server)"]
    exchanges = [m["key_server"] for m in trace if "key_server" in m]
    datagrams = [m for m in trace if "dtls" in m]
    assert len(ladder.arrows) == len(datagrams) + 2 * len(exchanges)
    server, sut = ladder.lanes[-1].x, ladder.lanes[-2].x
    requests = [a for a in ladder.arrows if a.x2 == server]
    answers = [a for a in ladder.arrows if a.x1 == server]
    assert [a.label for a in requests] == [e["http"] for e in exchanges]
    assert [a.label for a in answers] == [str(e["status"]) for e in exchanges]
    assert all(a.x1 == sut and a.detail for a in requests)
    assert all(a.anchor == a.number - 1 and not a.detail for a in answers), "an answer opens its request's details"
    hello = ladder.arrows[0]
    assert hello.label == "ClientHello" and hello.x2 == sut and "DTLS 1.2" in hello.fields


def test_towards_an_emks_the_harness_asks_as_the_emse_and_no_key_is_recorded(runs):
    """An EMKS under test: the requests the harness's EMSE makes go from its lane to the SUT's, each answered;
    the answer's body (which may carry a key) is not in the trace."""
    run = runs["emks"]
    trace = trace_of(run, lambda t: any(m.get("key_request", {}).get("route") == "ue_key" for m in t))
    ladder = build_ladder(trace, "emks")
    assert [lane.party for lane in ladder.lanes] == ["harness (EMSE)", "SUT (EMKS)"]
    client, sut = (lane.x for lane in ladder.lanes)
    exchanges = [m["key_request"] for m in trace if "key_request" in m]
    requests = [a for a in ladder.arrows if a.x1 == client]
    assert [a.label for a in requests] == [e["http"] for e in exchanges] and all(a.x2 == sut for a in requests)
    assert [a.label for a in ladder.arrows if a.x1 == sut] == [str(e["status"]) for e in exchanges]
    assert all(e["identity"] == "emse-1" and e["tls"] in ("TLSv1.2", "TLSv1.3") for e in exchanges)
    fetch = next(e for e in exchanges if e["route"] == "ue_key")
    assert fetch["body"] == "" and "Key>" not in json.dumps(trace)
