"""Messages the session sends a running board or team alike (never on the wire)."""

from __future__ import annotations

import msgspec


class Intervene(msgspec.Struct, frozen=True, kw_only=True):
    """A user message while the board or team may be running; it answers True if it took it."""

    content: str
    idempotency_key: str | None = None


class CancelWork(msgspec.Struct, frozen=True, kw_only=True):
    """End the board or team as cancelled; it answers True if it was running."""

    reason: str = "cancelled by the user"
