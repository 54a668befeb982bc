"""Messages between actors inside a worker (never on the wire)."""

from __future__ import annotations

import msgspec

from schemas import ExecutionMode, SessionCommand

from .llm import ChatMessage


class Deliver(msgspec.Struct, frozen=True, kw_only=True):
    """A session command taken from the command stream.

    The session actor answers with `None` (done: ack it now) or a future that
    resolves when the command's work is recorded (ack it then).
    """

    command: SessionCommand


class StartTurn(msgspec.Struct, frozen=True, kw_only=True):
    """Ask a turn actor to answer a user message (idempotent: a finished turn just reports)."""

    session_id: str
    user_message_id: str
    agent_name: str
    history: list[ChatMessage]
    """The conversation up to and including the user message."""
    model: str | None = None
    """The message's model override."""
    execution_mode: ExecutionMode | None = None
    """The message's execution mode override."""


class TurnFinished(msgspec.Struct, frozen=True, kw_only=True):
    """A turn ended: with an answer, or `failed` (also when cancelled) with the reason in `content`."""

    turn_id: str
    user_message_id: str
    content: str
    failed: bool = False
