"""Replies to bus requests."""

from __future__ import annotations

from ._base import Reply
from .quotas import QuotaInfo


class SessionReady(Reply, frozen=True, kw_only=True):
    """A session exists (new, or the same one again for a retried create)."""

    session_id: str
    agent_name: str
    position: int


class ErrorReply(Reply, frozen=True, kw_only=True, tag="error"):
    """A request was refused or could not be read; `code` is stable, `message` human."""

    code: str
    message: str
    quota_info: QuotaInfo | None = None
    """`quota_exceeded` only (an expert's call refused): the quota it would have gone past."""


CreateSessionReply = SessionReady | ErrorReply
