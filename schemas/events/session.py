"""Events of the session stream (`session-<sid>`)."""

from __future__ import annotations

from typing import Literal

import msgspec

from .._base import Event
from ..commands import ExecutionMode, Metadata
from ..principal import Principal


class SessionCreated(Event, frozen=True, kw_only=True):
    """A session was opened for an agent."""

    session_id: str
    agent_name: str
    metadata: Metadata = {}
    owner: str | None = None
    """The user who created it: only they (and admins) read and write it. None: created by a service or
    with no credentials configured, visible to every caller that sees all (admins, services)."""


class Routing(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Where a message's `@skill:` / `@board` / `@team` prefix sent it, as history shows it beside the clean text."""

    mode: Literal["skill", "board", "team"]
    skill: str | None = None
    experts: list[str] = []
    rounds: int | None = None


class UserMessage(Event, frozen=True, kw_only=True):
    """A user message was accepted; `idempotency_key` makes its command retry-safe.

    `content` is what the user sent (routing prefix included: the session
    routes by it again after a restart); `shown` is what history shows, the
    seed's clean content, with the prefix's choices in `routing`.
    """

    message_id: str
    content: str
    idempotency_key: str
    model: str | None = None
    execution_mode: ExecutionMode | None = None
    shown: str | None = None
    routing: Routing | None = None
    principal: Principal | None = None
    """Who sent it, as the worker believed (whose quotas its model calls count against); None without users."""


class AssistantMessage(Event, frozen=True, kw_only=True):
    """The answer to a user message (`reply_to` is that message's id)."""

    message_id: str
    content: str
    agent_name: str
    reply_to: str | None = None
    turn_id: str | None = None


class MessageFailed(Event, frozen=True, kw_only=True):
    """A user message ended without an answer: its turn or board failed, was cancelled or was given up.

    `reply_to` is the message's id; `code` is stable (`turn_failed`, `cancelled`,
    `board_failed`, `gave_up`, ...), `reason` human.
    """

    reply_to: str
    code: str
    reason: str


class CommandRejected(Event, frozen=True, kw_only=True):
    """A command was refused for good and terminated: it could not be read, or kept failing by itself.

    Recorded in the session's `refusals-<sid>` stream (the session itself may be
    what cannot take it); `sequence` is its place in the command stream.
    """

    sequence: int
    code: str
    reason: str
    idempotency_key: str | None = None


class SessionClosed(Event, frozen=True, kw_only=True):
    """The session was closed; later messages are refused."""

    reason: str = ""


class SessionRenamed(Event, frozen=True, kw_only=True):
    """The session's title was set (until then, clients see its first message as the title)."""

    title: str


SessionEvent = (
    SessionCreated | UserMessage | AssistantMessage | MessageFailed | CommandRejected | SessionClosed | SessionRenamed
)
