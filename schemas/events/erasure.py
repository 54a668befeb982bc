"""The tombstone an erased session's events are replaced by."""

from __future__ import annotations

from typing import Literal

from .._base import Event

ErasureReason = Literal["erased", "expired"]
"""`erased`: an admin or the service asked for it; `expired`: retention removed a closed session."""


class SessionErased(Event, frozen=True, kw_only=True):
    """Every other event of the session was deleted; this records that it happened, without what was erased.

    It takes the next version of the session's stream, so an actor that still
    holds the session fails its version check instead of writing into it.
    `uploads` names the uploads its messages named (random names, no content):
    a worker deletes them, and the session's commands, when it relays this.
    """

    erased_by: str
    """The principal who asked (`service`, an admin's user id, or `retention`)."""
    reason: ErasureReason = "erased"
    events_erased: int = 0
    uploads: list[str] = []
