"""Replies to bus requests."""

from __future__ import annotations

from ._base import Reply


class SessionReady(Reply, frozen=True, kw_only=True):
    """A session exists (new, or the same one again for a retried create)."""

    session_id: str
    agent_name: str
    position: int


class ErrorReply(Reply, frozen=True, kw_only=True, tag="error"):
    """A request was refused or could not be read; `code` is stable, `message` human."""

    code: str
    message: str


CreateSessionReply = SessionReady | ErrorReply
