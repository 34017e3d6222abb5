"""What a failure's reason adds so that a tester knows where to look, not only what went wrong.

A SUT that reads the binding otherwise (another COUNT packing, MAC octets, FC) meets the harness's protected
messages with silence: each case then shows "observed silence" and nothing points at the MAC. When the UE's
unanswered message was protected, the reason says so, and whether the SUT's own protected messages in the case
verify under the harness's keys (then the keys agree and the silence has another cause), do not (the SUT reads
the binding otherwise), or were never sent (it cannot be told).
"""

from __future__ import annotations

from typing import Any

VECTORS_HINT = "compare your reading of the binding with `best-conformance vectors`"


def unanswered_protection(ue: Any) -> str:
    """A sentence on the protection of the message the SUT did not answer; empty when that message carried no
    MAC (then protection cannot explain the silence)."""
    if not ue.sent_protected:
        return ""
    received, verifying = ue.protection_seen()
    if not received:
        return (
            "; the unanswered message was protected, and the SUT sent no protected message in this case, so whether "
            f"it verifies our MACs cannot be told: {VECTORS_HINT}"
        )
    if verifying < received:
        return (
            f"; the unanswered message was protected, and {received - verifying} of the SUT's {received} protected "
            f"message(s) in this case do not verify under our keys: the SUT reads the binding otherwise, "
            f"{VECTORS_HINT}"
        )
    return (
        f"; the unanswered message was protected, and all {received} of the SUT's protected message(s) in this "
        "case verify under our keys: the keys and the protection agree, so the silence has another cause"
    )
