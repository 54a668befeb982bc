"""Messages between actors inside a worker (never on the wire)."""

from __future__ import annotations

import msgspec

from schemas import SessionCommand

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
    model: str
    history: list[ChatMessage]


class TurnFinished(msgspec.Struct, frozen=True, kw_only=True):
    """A turn ended: with an answer, or `failed` with the reason in `content`."""

    turn_id: str
    user_message_id: str
    content: str
    failed: bool = False


class Generated(msgspec.Struct, frozen=True, kw_only=True):
    """The turn's generation task finished streaming."""

    content: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class GenerationFailed(msgspec.Struct, frozen=True, kw_only=True):
    """The turn's generation task failed."""

    message: str
