"""Messages between a session and its agent turns, and inside a turn (never on the wire)."""

from __future__ import annotations

import msgspec

from schemas import ExecutionMode, Principal
from schemas.events import AnyEvent

from ..llm import LLMMessage


class Propose(msgspec.Struct, frozen=True, kw_only=True):
    """The turn's driver asks to record `events`, decided from the state at `based_on` (its version).

    The actor answers True if it recorded them; False if the state moved on
    meanwhile (a reply, a cancel), in which case the driver decides again.
    """

    events: list[AnyEvent]
    based_on: int


class CancelTurn(msgspec.Struct, frozen=True, kw_only=True):
    """Stop the turn; the actor answers True if it was running."""


class ResolveConfirmation(msgspec.Struct, frozen=True, kw_only=True):
    """The user approved or denied a confirmation; the actor answers True if it was this turn's."""

    confirmation_id: str
    approved: bool


class AnswerQuestion(msgspec.Struct, frozen=True, kw_only=True):
    """The user answered an `ask_human` question; the actor answers True if it was this turn's."""

    request_id: str
    content: str


def turn_of(request_id: str) -> str:
    """The turn a confirmation or question id belongs to (ids are `<turn_id>-<local part>`)."""
    return request_id.split("-", 1)[0]


class StartTurn(msgspec.Struct, frozen=True, kw_only=True):
    """Ask a turn actor to answer a user message (idempotent: a finished turn just reports)."""

    session_id: str
    user_message_id: str
    agent_name: str
    history: list[LLMMessage]
    """The conversation up to and including the user message."""
    model: str | None = None
    """The message's model override."""
    execution_mode: ExecutionMode | None = None
    """The message's execution mode override."""
    principal: Principal | None = None
    """Who sent the message: its model calls count against their departments' quotas."""


class TurnFinished(msgspec.Struct, frozen=True, kw_only=True):
    """A turn ended: with an answer, or `failed` (also when cancelled) with the reason in `content`."""

    turn_id: str
    user_message_id: str
    content: str
    failed: bool = False
    code: str = "turn_failed"
    """Why a failed turn failed (`cancelled`, `gave_up`, the turn's own code)."""
