"""Events of a team pipeline (`team-<team_id>`): a lead plans phases, members execute them, the lead reviews.

The stream says everything about a team: its members and plan (`team_formed`,
then a `plan_update` per revision with its contract and steps), each phase's
work (`phase_started`, `expert_step`, `expert_result`, `review_result`,
`phase_completed` or `phase_failed`), the hand-offs between members
(`collaboration_notice`), replanning, the synthesis and the end
(`team_dissolved`, always last). User interventions are the board's
`user_intervention` with the team's id as `target_id`.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from .._base import Event
from ..quotas import QuotaInfo

TeamStatus = Literal["executing", "completed", "failed", "cancelled"]
Verdict = Literal["accept", "revise"]
Severity = Literal["low", "medium", "high"]


class TeamExpert(msgspec.Struct, frozen=True, kw_only=True):
    """Who a team member is, as a client draws it; `expert_id` is its actor's id (and subject token)."""

    expert_id: str
    name: str
    avatar: str = ""
    color: str = ""
    persona: str = ""
    role: Literal["lead", "member"] = "member"


class PlanPhase(msgspec.Struct, frozen=True, kw_only=True):
    """One phase of a team plan: what `assignee` (a member's name) delivers, after the phases it depends on."""

    id: str
    name: str
    goal: str = ""
    assignee: str
    depends_on: list[str] = []


class _ModelOutput(Event, frozen=True, kw_only=True):
    """An event a model call wrote, with what the call took."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: bool = False
    """The model's answer was cut at its token or time limit (`[limits]` in the config)."""
    charged_to: list[str] = []
    """The departments whose quotas counted the call (none for an admin, a service or without users)."""


class TeamFormed(_ModelOutput, frozen=True, kw_only=True):
    """A team was assembled for a task and its lead made the first plan (the tokens are the plan's)."""

    team_id: str
    task: str
    status: TeamStatus = "executing"
    lead_expert: str
    experts: list[TeamExpert]
    plan_phases: list[PlanPhase]


class PlanUpdate(_ModelOutput, frozen=True, kw_only=True):
    """The plan as of `revision` (1 is the first plan); `reason` says why it changed."""

    team_id: str
    revision: int
    plan_phases: list[PlanPhase]
    reason: str = ""


class Contract(msgspec.Struct, frozen=True, kw_only=True):
    """What one member owes whom: the deliverable of a phase and the members (or the lead) who build on it."""

    phase_id: str
    owner: str
    deliverable: str
    consumers: list[str]


class CollaborationContractDefined(Event, frozen=True, kw_only=True):
    """What each member owes whom under plan `revision`."""

    team_id: str
    revision: int
    contracts: list[Contract]


class PlanStep(Event, frozen=True, kw_only=True):
    """One planned step of plan `revision`, in execution order (`step` counts from 1)."""

    team_id: str
    revision: int
    step: int
    phase_id: str
    phase_name: str
    assignee: str
    depends_on: list[str] = []


class PhaseStarted(Event, frozen=True, kw_only=True):
    """A member began a phase."""

    team_id: str
    phase_id: str
    phase_name: str
    expert_id: str
    expert_name: str
    expert_color: str = ""


class ExpertStep(Event, frozen=True, kw_only=True):
    """A step of a member working on a phase (its brief, a revision), `step` counting from 1 per phase."""

    team_id: str
    phase_id: str
    expert_id: str
    expert_name: str
    expert_color: str = ""
    content: str
    step: int


class ExpertResult(_ModelOutput, frozen=True, kw_only=True):
    """A member's whole result for a phase; `attempt` counts from 1 (a revision is the next attempt)."""

    team_id: str
    phase_id: str
    expert_id: str
    expert_name: str
    expert_color: str = ""
    content: str
    attempt: int = 1


class ReviewResult(_ModelOutput, frozen=True, kw_only=True):
    """The lead's review of a phase result: accept it, or revise it for `reasons`."""

    team_id: str
    phase_id: str
    reviewer: str
    verdict: Verdict
    reasons: list[str] = []
    attempt: int = 1


class RiskFlagged(Event, frozen=True, kw_only=True):
    """A risk the reviewer raised about a phase."""

    team_id: str
    phase_id: str | None = None
    risk: str
    severity: Severity = "medium"
    raised_by: str = ""


class CollaborationNotice(Event, frozen=True, kw_only=True):
    """A hand-off: the result of one member's phase was given to another member for theirs."""

    team_id: str
    from_phase_id: str
    from_expert: str
    to_phase_id: str
    to_expert: str
    content: str
    """What was handed over, as the receiving member sees it (bounded)."""


class PhaseCompleted(Event, frozen=True, kw_only=True):
    """A phase is done; `accepted` is False when the revisions ran out before the lead accepted it."""

    team_id: str
    phase_id: str
    phase_name: str
    attempts: int = 1
    accepted: bool = True


class PhaseFailed(Event, frozen=True, kw_only=True):
    """A phase could not be done (its member gave no result)."""

    team_id: str
    phase_id: str
    phase_name: str
    reason: str


class Replanning(Event, frozen=True, kw_only=True):
    """The lead replans (after a failed phase or a user intervention); the next `plan_update` is the new plan."""

    team_id: str
    reason: str
    trigger: Literal["phase_failed", "intervention"] = "phase_failed"


class TeamSynthesis(_ModelOutput, frozen=True, kw_only=True):
    """The lead's final synthesis of the phase results."""

    team_id: str
    content: str


class TeamDissolved(Event, frozen=True, kw_only=True):
    """The team ended (always its last event): completed, failed, or cancelled, with `reason` for the last two."""

    team_id: str
    status: TeamStatus = "completed"
    reason: str = ""
    quota_info: QuotaInfo | None = None
    """A team that failed because a model call was over quota: which quota (the seed's `quota exceeded` frame)."""


TeamEvent = (
    TeamFormed
    | PlanUpdate
    | CollaborationContractDefined
    | PlanStep
    | PhaseStarted
    | ExpertStep
    | ExpertResult
    | ReviewResult
    | RiskFlagged
    | CollaborationNotice
    | PhaseCompleted
    | PhaseFailed
    | Replanning
    | TeamSynthesis
    | TeamDissolved
)
