"""Datagram hygiene at the step level: before what a UE step saw is charged to the SUT, whether the network
explains it (a late copy of a Session Request that made the HSE supersede the session in use, an answer that came
after a silence window). The UE's own rules, datagram by datagram, are in roles/datagrams.py."""

from __future__ import annotations

from typing import Any

from conformance.engine.context import Context
from conformance.engine.results import CheckFailed, NoAnswer, NotJudged
from conformance.roles.datagrams import late_grace
from conformance.roles.errors import NotJudgeable


def spoiled_by_network(ctx: Context, ue: Any, failure: CheckFailed, window: float) -> str | None:
    """Why a step of `ue` that failed (`window`: how long it waited) proves nothing about the SUT, if the
    network's duplicate of a Session Request took the session away; else None."""
    return ue.spoiled or _superseded_by_another(ctx, ue) or _superseded_maybe(ue, failure, window)


def others_judged(ctx: Context) -> None:
    """The probe is the step after a silence on another UE: a datagram that came to it after its silence
    window makes the case not judged (NotJudged), as it would if that UE acted next."""
    for ue in list(ctx.ues.values()):
        try:
            ue.check_judged()
        except NotJudgeable as exc:
            raise NotJudged(str(exc)) from None


def silence_seen(ue: Any, noted: int) -> str:
    """What a step that got no answer observed: silence, and the datagrams the UE set aside meanwhile (its notes
    from the `noted`-th on)."""
    aside = [f"{note['kind']}: {note['description']}" for note in ue.notes[noted:]]
    return "silence" + (f" (set aside: {'; '.join(aside)})" if aside else "")


def _superseded_by_another(ctx: Context, ue: Any) -> str | None:
    """Whether the network's copy of another UE's Session Request for the same subscriber (e.g. the throwaway
    UE that reads the SUT's SQN) reached the HSE after this UE's session opened: a conformant HSE lets the
    newer session supersede this one, and only that other UE's socket shows it."""
    if ue.session is None:
        return None
    for name, other in list(ctx.ues.items()):
        if other is ue or other.credentials.imsi != ue.credentials.imsi:
            continue
        other.drain()
        for at, session_id in other.second_answers:
            if at > ue.session.opened:
                return (
                    f"the network duplicated the Session Request of UE {name} (the same subscriber): the HSE answered "
                    f"the copy with session {session_id} after session {ue.session.id} of this UE opened, and a "
                    "conformant HSE lets the newer session supersede it"
                )
    return None


def _superseded_maybe(ue: Any, exc: CheckFailed, window: float) -> str | None:
    """A step that got silence or "unknown session" for the session the UE holds, on a path that duplicates
    (known, or seen while listening one late grace more): a late copy of a Session Request of this subscriber
    (this case's, or the case before's) may have reached the HSE after the session opened, and a conformant HSE
    then supersedes the session. Off such a path, the failure stands."""
    held = ue.held_session
    silent = isinstance(exc, NoAnswer)  # then the UE already listened one late grace more, noting any copy
    if held is None or not (silent or ue.says_unknown_session(ue.last_received)):
        return None
    if not silent:
        ue.listen(late_grace(window))
    if not ue.path_duplicates:
        return None
    return (
        "the network duplicates datagrams on the path to the SUT (see the trace), and a late copy of a Session "
        f"Request of this subscriber makes a conformant HSE supersede the session in use (session {held})"
    )
