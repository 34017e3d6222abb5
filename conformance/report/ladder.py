"""A case's decoded messages as a sequence diagram: lanes for the parties, one arrow per message in time order.

The diagram is geometry only (the template draws it as inline SVG), so the report stays one static file. Which
lane is which party is read from the trace itself: the first datagram is the harness's (it always opens the
exchange), its destination is the SUT; an endpoint first seen talking to one side joins the other. A SUT that
answers from an unexpected port therefore shows up as a lane of its own on the SUT's side. Key-server requests
an EMSE under test makes go to a lane of the harness's key server on the right.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

HARNESS_ROLE = {"hse": "UE", "emks": "EMSE", "emse": "UE", "ue": "HSE"}  # whom the harness plays towards each SUT kind

WIDTH = 900  # px of the whole diagram
TIME_COLUMN = 84  # px on the left for the time offsets
HEADER = 46  # px for the lane headers
ROW = 44  # px per message
CHAR = 6.4  # px per character of the small label font, to cut labels to the arrow's length
BOLD = 7.4  # px per character of the command font, to keep a command inside the diagram


@dataclass(frozen=True)
class Lane:
    x: float
    party: str  # "harness (UE)" or "SUT (HSE)"
    endpoint: str


@dataclass(frozen=True)
class Arrow:
    number: int
    anchor: int  # the message whose details it opens: its own, or for an answer its request's
    y: float
    x1: float
    x2: float
    label: str  # the command (EMSDP), handshake messages (DTLS), method and path (key server)
    heading: str  # the same, cut to stay inside the diagram
    fields: str  # its key fields
    short: str  # the same, cut to fit along the arrow
    offset: str  # time since the first message
    detail: str  # every decoded field, for the message list under the diagram
    problems: tuple[str, ...]

    @property
    def head(self) -> str:
        """The arrowhead's polygon points, at x2."""
        tip, back = self.x2, self.x2 - 8 if self.x2 > self.x1 else self.x2 + 8
        return f"{tip:.1f},{self.y:.1f} {back:.1f},{self.y - 4:.1f} {back:.1f},{self.y + 4:.1f}"


@dataclass
class Ladder:
    lanes: list[Lane] = field(default_factory=list)
    arrows: list[Arrow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # trace entries that are not messages (e.g. unreadable pcap)
    width: int = WIDTH
    height: int = HEADER

    @property
    def empty(self) -> bool:
        return not self.arrows


KEY_SERVER = "key server"  # the lane of the harness's key server, for the requests an EMSE under test makes
KEY_CLIENT = "key client"  # the lane of the harness's key-server client, towards an HSE's or EMKS's key server
KEY_CLIENT_ROLE = {"hse": "EAS", "emks": "EMSE"}


def build_ladder(trace: list[dict[str, Any]], sut_kind: str) -> Ladder:
    """The diagram of one case's trace (traces/<CASE>.json): EMSDP or DTLS datagrams between network endpoints,
    and key-server exchanges, each a request and its answer: `key_server` from the SUT to the harness's key
    server, `key_request` from the harness's key client to the SUT."""
    ladder = Ladder()
    entries = [m for m in trace if _placed(m)]
    ladder.notes = [_note(m) for m in trace if not _placed(m)]
    if not entries:
        return ladder
    datagrams = [m for m in entries if "key_server" not in m and "key_request" not in m]
    harness, sut = _sides(datagrams) if datagrams else ([], [])
    role = HARNESS_ROLE.get(sut_kind, "peer")
    parties = [(e, f"harness ({role})") for e in harness] + [(e, f"SUT ({sut_kind.upper()})") for e in sut]
    if any("key_request" in m for m in entries):
        parties.insert(0, (KEY_CLIENT, f"harness ({KEY_CLIENT_ROLE.get(sut_kind, 'key client')})"))
    if len(datagrams) < len(entries) and not sut:
        parties.append(("", f"SUT ({sut_kind.upper()})"))
    if any("key_server" in m for m in entries):
        parties.append((KEY_SERVER, "harness (key server)"))
    step = (WIDTH - TIME_COLUMN) / len(parties)
    ladder.lanes = [Lane(TIME_COLUMN + step * (i + 0.5), party, e) for i, (e, party) in enumerate(parties)]
    x = {lane.endpoint: lane.x for lane in ladder.lanes}
    sut_x = x[sut[0] if sut else ""]
    first = _time(entries[0])
    for m in entries:
        detail = json.dumps(m, indent=1, sort_keys=True, default=str)
        problems = tuple(str(p) for p in [*(m.get("problems") or ()), *([m["problem"]] if m.get("problem") else [])])
        if "key_server" in m or "key_request" in m:  # the SUT asks the harness's key server, or the other way
            client, server = (sut_x, x[KEY_SERVER]) if "key_server" in m else (x[KEY_CLIENT], sut_x)
            exchange = m.get("key_server") or m["key_request"]
            request = (client, server, str(exchange.get("http") or "request"), _fields(exchange, _REQUEST))
            answer = (server, client, str(exchange.get("status", "no answer")), _fields(exchange, _ANSWER))
            _arrow(ladder, *request, _time(m), first, detail, problems)
            _arrow(ladder, *answer, _time(m), first, "", (), anchor=len(ladder.arrows))
        else:
            _arrow(ladder, x[m["src"]], x[m["dst"]], *describe(m), _time(m), first, detail, problems)
    ladder.height = HEADER + ROW * len(ladder.arrows) + 16
    return ladder


def _arrow(
    ladder: Ladder,
    x1: float,
    x2: float,
    label: str,
    fields: str,
    time: float | None,
    first: float | None,
    detail: str,
    problems: tuple[str, ...],
    anchor: int | None = None,
) -> None:
    number = len(ladder.arrows) + 1
    room = max(8, int(abs(x2 - x1) / CHAR) - 2)
    mid = (x1 + x2) / 2
    heading = _cut(label, int(2 * min(mid - TIME_COLUMN / 2, WIDTH - mid) / BOLD) - 4)
    ladder.arrows.append(
        Arrow(
            number=number,
            anchor=anchor or number,
            y=HEADER + ROW * (number - 0.5) + 8,
            x1=x1,
            x2=x2 if x2 != x1 else x1 + 40,
            label=label,
            heading=heading,
            fields=fields,
            short=_cut(fields, room),
            offset=_offset(time, first),
            detail=detail,
            problems=problems,
        )
    )


def _cut(text: str, room: int) -> str:
    return text if len(text) <= room else text[: max(room, 8) - 1] + "…"


def describe(message: dict[str, Any]) -> tuple[str, str]:
    """(what a datagram is, its key fields in one line): the arrow's two labels."""
    if "dtls" in message:
        return _dtls(message["dtls"])
    plane = message.get("plane")
    header = message.get("header") or {}
    ids = [f"{short} {header[key]}" for key, short in _HEADER_FIELDS if header.get(key) not in (None, 0)]
    if plane == "cp":
        command = message.get("command") or {}
        code = command.get("code")
        name = command.get("name") or (f"unknown command {code:#04x}" if isinstance(code, int) else "unknown command")
        tlvs = [_tlv(t) for t in message.get("tlvs") or []]
        parts = ids + ([", ".join(tlvs)] if tlvs else []) + (["MAC"] if message.get("mac") else [])
        return name, " · ".join(parts)
    if plane == "up":
        data = message.get("data") or ""
        return "user plane", " · ".join([*ids, f"{len(data) // 2} octets of data"])
    return "not decodable", f"{message.get('octets', '?')} octets"


def _dtls(records: list[dict[str, Any]]) -> tuple[str, str]:
    """DTLS: the handshake messages in clear, else what the records are (an alert, encrypted data)."""
    names: list[str] = []
    for r in records:
        if r.get("messages"):
            names += [str(n) for n in r["messages"]]
        elif r.get("alert"):
            names.append(f"alert {r['alert'].get('level')}/{r['alert'].get('description')}")
        else:
            names.append(f"{r.get('record', '?')}{' (encrypted)' if r.get('encrypted') else ''}")
    versions = sorted({str(r.get("version")) for r in records if r.get("version")})
    sizes = " + ".join(f"{r.get('length', '?')}" for r in records)
    return ", ".join(names) or "DTLS (no record)", " · ".join([*versions, f"records of {sizes} octets"])


_REQUEST = ("route", "identity", "tls")
_ANSWER = ("content_type",)


def _fields(exchange: dict[str, Any], keys: tuple[str, ...]) -> str:
    return " · ".join(f"{k} {exchange[k]}" for k in keys if exchange.get(k))


def _placed(entry: Any) -> bool:
    """Whether a trace entry goes on the diagram: a datagram between two endpoints, or a key-server exchange."""
    return isinstance(entry, dict) and (
        bool(entry.get("src") and entry.get("dst")) or "key_server" in entry or "key_request" in entry
    )


_HEADER_FIELDS = (("session_id", "sid"), ("counter", "ctr"), ("key_id", "key"))


def _tlv(tlv: dict[str, Any]) -> str:
    """A TLV's name, with its value when decoding made it short and readable (a cause, an IMSI, an EAS id)."""
    name = tlv.get("name") or f"tag {tlv.get('tag', '?')}"
    decoded = tlv.get("decoded")
    if isinstance(decoded, str | int) and decoded != tlv.get("value") and len(str(decoded)) <= 20:
        return f"{name}={decoded}"
    return name


def _sides(messages: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The harness's endpoints and the SUT's, each in order of first appearance."""
    harness, sut = [messages[0]["src"]], [messages[0]["dst"]]
    for m in messages:
        src, dst = m["src"], m["dst"]
        if src in harness or dst in sut:
            _join(harness, src, sut)
            _join(sut, dst, harness)
        else:  # talks towards a harness endpoint, or is unrelated to both: it answers, so it is the SUT's side
            _join(sut, src, harness)
            _join(harness, dst, sut)
    return harness, sut


def _join(side: list[str], endpoint: str, other: list[str]) -> None:
    if endpoint not in side and endpoint not in other:
        side.append(endpoint)


def _time(message: dict[str, Any]) -> float | None:
    value = message.get("time")
    return float(value) if isinstance(value, int | float) else None


def _offset(time: float | None, first: float | None) -> str:
    if time is None or first is None:
        return ""
    return f"+{(time - first) * 1000:.1f} ms"


def _note(entry: Any) -> str:
    if isinstance(entry, dict) and "error" in entry:
        return str(entry["error"])
    return json.dumps(entry, sort_keys=True, default=str)
