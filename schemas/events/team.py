"""Events of a team pipeline (`team-<team_id>`): a lead plans, members execute, the lead reviews."""

from __future__ import annotations

import msgspec

from .._base import Event
from .board import ExpertProfile


class PlanPhase(msgspec.Struct, frozen=True, kw_only=True):
    """One phase of a team plan."""

    id: str
    name: str
    description: str = ""
    assignee: str = ""
    depends_on: list[str] = []


class TeamFormed(Event, frozen=True, kw_only=True):
    """A team was assembled for a task, with its first plan."""

    team_id: str
    task: str
    lead_expert: str
    experts: list[ExpertProfile]
    plan_phases: list[PlanPhase] = []


class PlanUpdate(Event, frozen=True, kw_only=True):
    """The plan's phases changed."""

    team_id: str
    plan_phases: list[PlanPhase]


class PhaseStarted(Event, frozen=True, kw_only=True):
    """A member began a phase."""

    team_id: str
    phase_id: str
    phase_name: str
    expert_name: str


class ExpertStep(Event, frozen=True, kw_only=True):
    """An intermediate step of a member working on a phase."""

    team_id: str
    phase_id: str
    expert_name: str
    expert_color: str = ""
    step: int
    content: str


class ExpertResult(Event, frozen=True, kw_only=True):
    """A member's whole result for a phase."""

    team_id: str
    phase_id: str
    expert_name: str
    expert_color: str = ""
    content: str


class ReviewResult(Event, frozen=True, kw_only=True):
    """The lead's review of a phase result."""

    team_id: str
    phase_id: str
    approved: bool
    feedback: str = ""


class RiskFlagged(Event, frozen=True, kw_only=True):
    """A risk the lead or a member raised."""

    team_id: str
    phase_id: str | None = None
    risk: str
    severity: str = "medium"


class PhaseCompleted(Event, frozen=True, kw_only=True):
    """A phase was accepted."""

    team_id: str
    phase_id: str


class PhaseFailed(Event, frozen=True, kw_only=True):
    """A phase failed."""

    team_id: str
    phase_id: str
    reason: str


class Replanning(Event, frozen=True, kw_only=True):
    """The lead is replanning after a failure."""

    team_id: str
    reason: str


class CollaborationNotice(Event, frozen=True, kw_only=True):
    """A note from the team to the user (e.g. an intervention was taken into account)."""

    team_id: str
    content: str


class TeamSynthesis(Event, frozen=True, kw_only=True):
    """The lead's final synthesis."""

    team_id: str
    content: str


class TeamDissolved(Event, frozen=True, kw_only=True):
    """The team finished (`status` says how)."""

    team_id: str
    status: str = "completed"


TeamEvent = (
    TeamFormed
    | PlanUpdate
    | PhaseStarted
    | ExpertStep
    | ExpertResult
    | ReviewResult
    | RiskFlagged
    | PhaseCompleted
    | PhaseFailed
    | Replanning
    | CollaborationNotice
    | TeamSynthesis
    | TeamDissolved
)
