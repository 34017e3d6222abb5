"""How a reference SUT refuses a message it received: the binding's error reaction (`emsdp.error_reaction`) for
the error class decides whether a Message Reject goes back or the message is dropped in silence. One home for
the reference HSE and the reference UE, which refuse alike."""

from __future__ import annotations


class Reject(Exception):
    """Stop handling a message and answer (or not) per the binding's error reaction for `cause`."""

    def __init__(self, cause: str, reason: str, reaction: str = "reject"):
        super().__init__(reason)
        self.cause, self.reaction = cause, reaction
