"""Messages between the session and board actors inside a worker (never on the wire)."""

from __future__ import annotations

import msgspec

from schemas import Principal
from schemas.events import AnyEvent
from schemas.quotas import QuotaInfo

from .plan import BoardPlan, BoardRefused


class StartBoard(msgspec.Struct, frozen=True, kw_only=True):
    """Hold the board planned for a user message (idempotent: a started board continues, an ended one reports).

    `plan` is refused only when the configuration changed since the message
    was accepted; a board that never started then fails with that reason.
    """

    session_id: str
    user_message_id: str
    plan: BoardPlan | BoardRefused
    locale: str = "en"
    """The session's language: the final answer's sections are written in it."""
    principal: Principal | None = None
    """Who asked for the board: its experts' model calls count against that one's quotas."""


class BoardFinished(msgspec.Struct, frozen=True, kw_only=True):
    """A board ended: with the final answer for the session, or `failed` with the reason in `content`."""

    board_id: str
    user_message_id: str
    content: str
    failed: bool = False
    code: str = "board_failed"


class StepDone(msgspec.Struct, frozen=True, kw_only=True):
    """The board's driver produced the outcome of its next step; the board answers its log position, or None."""

    event: AnyEvent


class DriverGaveUp(msgspec.Struct, frozen=True, kw_only=True):
    """The board's driver could not get an expert's answer after retries, or a model call was over quota."""

    reason: str
    quota_info: QuotaInfo | None = None
