"""Messages from the worker to a session actor (never on the wire)."""

from __future__ import annotations

import msgspec

from schemas import SessionCommand


class Deliver(msgspec.Struct, frozen=True, kw_only=True):
    """A session command taken from the command stream.

    The session actor answers with `None` (done: ack it now) or a future that
    resolves when the command's work is recorded (ack it then).
    """

    command: SessionCommand


class Abandon(msgspec.Struct, frozen=True, kw_only=True):
    """Give up on a message whose work outlived its wall-clock limit: stop it and record its failure.

    The message is named by the idempotency key it was sent with.
    """

    key: str | None
    reason: str
