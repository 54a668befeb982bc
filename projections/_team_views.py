"""The view of a team pipeline as `projections.teams.fold` builds it (and `GET /teams/{id}` returns it)."""

from __future__ import annotations

from typing import Literal

import msgspec

from schemas.events import Contract, ExpertResult, PlanUpdate, ReviewResult, TeamExpert, TeamFormed, TeamSynthesis

from .boards import InterventionView, UsageView

TeamViewStatus = Literal["unknown", "executing", "completed", "failed", "cancelled"]
PhaseStatus = Literal["pending", "running", "completed", "failed"]
ModelCall = TeamFormed | PlanUpdate | ExpertResult | ReviewResult | TeamSynthesis
"""The team events a model call wrote, with its `prompt_tokens`, `completion_tokens` and `truncated`."""


class StepView(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    step: int
    expert_id: str
    expert_name: str
    expert_color: str
    content: str


class ResultView(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt at a phase's result (a revision is the next attempt)."""

    position: int
    attempt: int
    expert_id: str
    expert_name: str
    expert_color: str
    content: str
    truncated: bool


class ReviewView(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    attempt: int
    reviewer: str
    verdict: Literal["accept", "revise"]
    reasons: list[str]


class HandoffView(msgspec.Struct, frozen=True, kw_only=True):
    """What a phase received from an earlier one (`collaboration_notice`)."""

    position: int
    from_phase_id: str
    from_expert: str
    to_expert: str
    content: str


class PhaseView(msgspec.Struct, kw_only=True):
    """One phase: its plan entry, who works on it, its steps, attempts, reviews and the hand-offs it received.

    `revision` is the last plan revision that had it (0: never planned);
    `step` its place in that plan's execution order, once a `plan_step` said it.
    """

    id: str
    name: str
    goal: str = ""
    assignee: str = ""
    depends_on: list[str] = []
    in_plan: bool = False
    revision: int = 0
    step: int | None = None
    status: PhaseStatus = "pending"
    accepted: bool = False
    attempts: int = 0
    expert_id: str = ""
    expert_name: str = ""
    expert_color: str = ""
    steps: list[StepView] = []
    results: list[ResultView] = []
    reviews: list[ReviewView] = []
    handoffs: list[HandoffView] = []
    failure: str | None = None
    started_position: int | None = None
    ended_position: int | None = None


class RevisionView(msgspec.Struct, frozen=True, kw_only=True):
    """A `plan_update`: the plan's phase ids as of `revision`, and why it changed."""

    position: int
    revision: int
    reason: str
    phase_ids: list[str]


class RiskView(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    phase_id: str | None
    risk: str
    severity: Literal["low", "medium", "high"]
    raised_by: str


class ReplanView(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    reason: str
    trigger: Literal["phase_failed", "intervention"]


class SynthesisView(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    content: str
    truncated: bool


class EndingView(msgspec.Struct, frozen=True, kw_only=True):
    """How the team ended (`team_dissolved`)."""

    position: int
    status: Literal["executing", "completed", "failed", "cancelled"]
    reason: str


class TeamTimelineEntry(msgspec.Struct, frozen=True, kw_only=True):
    """Every event of the team, in log order, by type: the order-preserving skeleton of the view."""

    position: int
    type: str
    phase_id: str | None = None


class TeamView(msgspec.Struct, kw_only=True):
    """A team pipeline as replay and the REST API show it (`position`: the last event folded in)."""

    team_id: str
    session_id: str | None = None
    status: TeamViewStatus = "unknown"
    task: str = ""
    lead_expert: str = ""
    experts: list[TeamExpert] = []
    revision: int = 0
    plan: list[PhaseView] = []
    off_plan: list[PhaseView] = []
    revisions: list[RevisionView] = []
    contracts: list[Contract] = []
    contracts_revision: int = 0
    risks: list[RiskView] = []
    interventions: list[InterventionView] = []
    replans: list[ReplanView] = []
    synthesis: SynthesisView | None = None
    ending: EndingView | None = None
    position: int = 0
    timeline: list[TeamTimelineEntry] = []
    usage: UsageView = UsageView()
