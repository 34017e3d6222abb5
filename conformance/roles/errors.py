"""What a UE's exchange with the HSE can end in, other than the answer it waits for.

A ProtocolError (NoReply, PortUnreachable) is the SUT's to answer for; a NotJudgeable (LateReply) is timing or the
network, never charged to the SUT: the engine makes the step inconclusive.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """The HSE answered something the UE cannot accept; the message says what. The SUT's error, not a failed
    assertion of the harness: hence not an AssertionError."""


class NoReply(ProtocolError):
    """The HSE did not answer within the timeout."""


class PortUnreachable(ProtocolError):
    """An ICMP port unreachable came back: nothing listens at the HSE's address."""


class NotJudgeable(Exception):
    """What the UE saw cannot be judged, for a reason that is timing or the network, not the SUT. Not a
    ProtocolError: nothing here may be charged to the SUT; the engine makes the step inconclusive."""


class LateReply(NotJudgeable):
    """An answer came after the window it was due in, or a datagram came after a silence window before the UE's
    next message."""
