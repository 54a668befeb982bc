"""Messages between the session and team actors inside a worker (never on the wire)."""

from __future__ import annotations

import msgspec

from schemas import Principal
from schemas.experts import ExpertAnswer
from schemas.quotas import QuotaInfo

from .logic import Step
from .routing import TeamRefused, TeamSpec


class StartTeam(msgspec.Struct, frozen=True, kw_only=True):
    """Form the team asked for by a user message (idempotent: a running team continues, an ended one reports).

    `spec` is refused only when the configuration changed since the message
    was accepted; the team then ends at once with that reason.
    """

    session_id: str
    user_message_id: str
    spec: TeamSpec | TeamRefused
    locale: str = "en"
    """The session's language: the final answer's fallbacks and failures are written in it."""
    principal: Principal | None = None
    """Who asked for the team: its experts' model calls count against their departments' quotas."""


class TeamFinished(msgspec.Struct, frozen=True, kw_only=True):
    """A team ended: with the final answer for the session, or `failed` with the reason in `content`."""

    team_id: str
    user_message_id: str
    content: str
    failed: bool = False
    code: str = "team_failed"


class Answered(msgspec.Struct, frozen=True, kw_only=True):
    """An expert answered a step's request."""

    answer: ExpertAnswer


class NoAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """No expert answered a step's request after its attempts."""

    reason: str


class StepDone(msgspec.Struct, frozen=True, kw_only=True):
    """The driver finished a step (`outcome` None for steps without a model call); the team answers its log position, or None."""

    step: Step
    outcome: Answered | NoAnswer | None = None


class DriverGaveUp(msgspec.Struct, frozen=True, kw_only=True):
    """The team's driver could not go on (a bug, or a model call over quota); the team ends as failed."""

    reason: str
    quota_info: QuotaInfo | None = None
