"""Commands: intents sent to the system by clients and other services."""

from __future__ import annotations

from typing import Any, Literal

from ._base import Command
from .principal import Principal

ExecutionMode = Literal["direct", "react", "plan_exec"]
Metadata = dict[str, Any]
"""A session's metadata: any JSON values, objects and arrays too (as the seed kept them), nested at most
`limits.MAX_DEPTH` deep in the command (`limits.check`)."""


class CreateSession(Command, frozen=True, kw_only=True):
    """Create a chat session bound to an agent (request/reply on `sessions.create`).

    A caller may choose `session_id` to make a retried create idempotent.
    """

    agent_name: str = "assistant"
    metadata: Metadata = {}
    session_id: str | None = None
    principal: Principal | None = None
    """Who creates it (the session's owner); set by a gateway, ignored from any other sender."""


class SendMessage(Command, frozen=True, kw_only=True):
    """Send a user message to a session; a retry with the same key is a no-op."""

    content: str
    model: str | None = None
    execution_mode: ExecutionMode | None = None
    idempotency_key: str | None = None
    principal: Principal | None = None
    """Who sends it (whose quotas its model calls count against); set by a gateway, ignored from any other sender."""


class Cancel(Command, frozen=True, kw_only=True):
    """Cancel the running turn (or board/team) of a session."""

    turn_id: str | None = None
    idempotency_key: str | None = None
    """The command's key: the stream drops a retry with the same one, and a refusal names it (so it reaches its sender)."""


class HumanReply(Command, frozen=True, kw_only=True, tag="reply"):
    """Answer an `ask_human` question (wire tag `reply`, the seed's name)."""

    request_id: str
    content: str
    idempotency_key: str | None = None
    """The command's key: the stream drops a retry with the same one, and a refusal names it (so it reaches its sender)."""


class ConfirmationReply(Command, frozen=True, kw_only=True):
    """Approve or deny a tool call that asked for confirmation."""

    confirmation_id: str
    approved: bool
    idempotency_key: str | None = None
    """The command's key: the stream drops a retry with the same one, and a refusal names it (so it reaches its sender)."""


class CloseSession(Command, frozen=True, kw_only=True):
    """Close a session; later messages are refused."""

    idempotency_key: str | None = None
    """The command's key: the stream drops a retry with the same one, and a refusal names it (so it reaches its sender)."""


class RenameSession(Command, frozen=True, kw_only=True):
    """Give a session the title clients list it by (by default its first message)."""

    title: str
    idempotency_key: str | None = None
    """The command's key: the stream drops a retry with the same one, and a refusal names it (so it reaches its sender)."""


SessionCommand = SendMessage | Cancel | HumanReply | ConfirmationReply | CloseSession | RenameSession
"""Every command addressed to one session (subject `session.<sid>.cmd`)."""
