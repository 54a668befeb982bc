"""The tombstones an erased session's events are replaced by: one for the session, one on each of its other streams."""

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


class StreamErased(Event, frozen=True, kw_only=True):
    """A turn's, board's, team's or refusals' stream of an erased session ends here (its events were deleted).

    At the stream's next version, like the session's tombstone: the actor
    driving that work fails its version check, and once it reloads it finds
    this and does not start the work again.
    """
