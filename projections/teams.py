"""A team pipeline rebuilt from its stream alone: the pure fold behind replay and `GET /teams/{id}`.

`fold` never calls an LLM, NATS or the database: give it the recorded events of
`team-<team_id>` (in log order) and it returns the pipeline as it stood after
the last of them. It is total: any sequence of team events, even one no team
actor would write (a result before the plan, a phase nobody planned), gives a
view, with every event shown once and in log order.

A phase is one `PhaseView` for its whole life, found by its id: it is in
`plan` while the latest plan has it, and moves to `off_plan` (with what it
did) when a later plan drops it, as replanning does with a failed phase.
Events about a phase no plan named put it in `off_plan` too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeGuard

from schemas import tag_of
from schemas.envelope import RecordedEvent
from schemas.events import (
    CollaborationContractDefined,
    CollaborationNotice,
    ExpertResult,
    ExpertStep,
    PhaseCompleted,
    PhaseFailed,
    PhaseStarted,
    PlanPhase,
    PlanStep,
    PlanUpdate,
    Replanning,
    ReviewResult,
    RiskFlagged,
    TeamDissolved,
    TeamFormed,
    TeamSynthesis,
    UserIntervention,
)

from ._team_views import (
    EndingView,
    HandoffView,
    ModelCall,
    PhaseStatus,
    PhaseView,
    ReplanView,
    ResultView,
    ReviewView,
    RevisionView,
    RiskView,
    StepView,
    SynthesisView,
    TeamTimelineEntry,
    TeamView,
    TeamViewStatus,
)
from .boards import InterventionView, UsageView

__all__ = [
    "EndingView",
    "HandoffView",
    "InterventionView",
    "ModelCall",
    "PhaseStatus",
    "PhaseView",
    "ReplanView",
    "ResultView",
    "ReviewView",
    "RevisionView",
    "RiskView",
    "StepView",
    "SynthesisView",
    "TeamTimelineEntry",
    "TeamView",
    "TeamViewStatus",
    "UsageView",
    "apply",
    "fold",
    "is_model_call",
    "phases",
]


def fold(team_id: str, recorded: Iterable[RecordedEvent], *, at: int | None = None) -> TeamView:
    """Fold the team's events into a view; with `at`, only those at or before that position."""
    view = TeamView(team_id=team_id)
    for item in recorded:
        if at is not None and item.position > at:
            break
        apply(view, item)
    return view


def apply(view: TeamView, recorded: RecordedEvent) -> TeamView:
    """Fold one more recorded event into `view` (mutating and returning it); non-team events are ignored."""
    event = recorded.event
    position = recorded.position
    phase_id: str | None = None
    match event:
        case TeamFormed():
            view.task, view.lead_expert, view.experts = event.task, event.lead_expert, list(event.experts)
            if view.status == "unknown":
                view.status = event.status
            if view.revision == 0:  # the first plan, unless a plan_update came first
                _set_plan(view, event.plan_phases, 1)
        case PlanUpdate():
            _set_plan(view, event.plan_phases, event.revision)
            phase_ids = [p.id for p in event.plan_phases]
            view.revisions.append(
                RevisionView(position=position, revision=event.revision, reason=event.reason, phase_ids=phase_ids)
            )
        case CollaborationContractDefined():
            view.contracts, view.contracts_revision = list(event.contracts), event.revision
        case PlanStep():
            phase_id = event.phase_id
            phase = _phase(view, event.phase_id, event.phase_name)
            phase.step = event.step
            if not phase.in_plan:
                phase.assignee, phase.depends_on = event.assignee, list(event.depends_on)
        case PhaseStarted():
            phase_id = event.phase_id
            phase = _phase(view, event.phase_id, event.phase_name)
            phase.expert_id, phase.expert_name = event.expert_id, event.expert_name
            phase.expert_color, phase.status = event.expert_color, "running"
            phase.started_position, phase.ended_position = position, None
        case ExpertStep():
            phase_id = event.phase_id
            phase = _running(_phase(view, event.phase_id))
            phase.steps.append(
                StepView(
                    position=position,
                    step=event.step,
                    expert_id=event.expert_id,
                    expert_name=event.expert_name,
                    expert_color=event.expert_color,
                    content=event.content,
                )
            )
        case ExpertResult():
            phase_id = event.phase_id
            phase = _running(_phase(view, event.phase_id))
            phase.attempts = max(phase.attempts, event.attempt)
            phase.results.append(
                ResultView(
                    position=position,
                    attempt=event.attempt,
                    expert_id=event.expert_id,
                    expert_name=event.expert_name,
                    expert_color=event.expert_color,
                    content=event.content,
                    truncated=event.truncated,
                )
            )
        case ReviewResult():
            phase_id = event.phase_id
            _phase(view, event.phase_id).reviews.append(
                ReviewView(
                    position=position,
                    attempt=event.attempt,
                    reviewer=event.reviewer,
                    verdict=event.verdict,
                    reasons=list(event.reasons),
                )
            )
        case CollaborationNotice():
            phase_id = event.to_phase_id
            _phase(view, event.to_phase_id).handoffs.append(
                HandoffView(
                    position=position,
                    from_phase_id=event.from_phase_id,
                    from_expert=event.from_expert,
                    to_expert=event.to_expert,
                    content=event.content,
                )
            )
        case PhaseCompleted():
            phase_id = event.phase_id
            phase = _phase(view, event.phase_id, event.phase_name)
            phase.status, phase.accepted, phase.attempts = "completed", event.accepted, event.attempts
            phase.failure, phase.ended_position = None, position
        case PhaseFailed():
            phase_id = event.phase_id
            phase = _phase(view, event.phase_id, event.phase_name)
            phase.status, phase.accepted, phase.failure, phase.ended_position = "failed", False, event.reason, position
        case RiskFlagged():
            phase_id = event.phase_id
            view.risks.append(
                RiskView(
                    position=position,
                    phase_id=event.phase_id,
                    risk=event.risk,
                    severity=event.severity,
                    raised_by=event.raised_by,
                )
            )
        case Replanning():
            view.replans.append(ReplanView(position=position, reason=event.reason, trigger=event.trigger))
        case UserIntervention():
            view.interventions.append(InterventionView(position=position, content=event.content))
        case TeamSynthesis():
            view.synthesis = SynthesisView(position=position, content=event.content, truncated=event.truncated)
        case TeamDissolved():
            view.ending = EndingView(position=position, status=event.status, reason=event.reason)
            view.status = event.status
        case _:
            return view
    if is_model_call(event):
        used = view.usage
        view.usage = UsageView(
            calls=used.calls + 1,
            prompt_tokens=used.prompt_tokens + event.prompt_tokens,
            completion_tokens=used.completion_tokens + event.completion_tokens,
            truncated=used.truncated + event.truncated,
        )
    view.session_id = view.session_id or recorded.session_id
    view.position = position
    view.timeline.append(TeamTimelineEntry(position=position, type=tag_of(type(event)), phase_id=phase_id))
    return view


def is_model_call(event: object) -> TypeGuard[ModelCall]:
    """Whether `event` records a model call of a team (for usage).

    A `plan_update` of revision 1 restates the first plan, whose call
    `team_formed` already records; later revisions are calls of their own.
    """
    if isinstance(event, PlanUpdate):
        return event.revision > 1
    return isinstance(event, TeamFormed | ExpertResult | ReviewResult | TeamSynthesis)


def phases(view: TeamView) -> list[PhaseView]:
    """Every phase of the view: the current plan's, then those off the plan."""
    return [*view.plan, *view.off_plan]


def _set_plan(view: TeamView, planned: list[PlanPhase], revision: int) -> None:
    """Make `planned` the plan; a phase it drops moves to `off_plan` with everything it did."""
    known = {phase.id: phase for phase in phases(view)}
    plan: list[PhaseView] = []
    for entry in planned:
        if any(phase.id == entry.id for phase in plan):
            continue  # a plan naming a phase twice keeps its first entry
        phase = known.get(entry.id) or PhaseView(id=entry.id, name=entry.name)
        phase.name, phase.goal, phase.assignee = entry.name, entry.goal, entry.assignee
        phase.depends_on, phase.in_plan, phase.revision = list(entry.depends_on), True, revision
        plan.append(phase)
    kept = {phase.id for phase in plan}
    off_plan = [phase for phase in view.off_plan if phase.id not in kept]
    for phase in view.plan:
        if phase.id not in kept:
            phase.in_plan = False
            off_plan.append(phase)
    view.plan, view.off_plan, view.revision = plan, off_plan, revision


def _phase(view: TeamView, phase_id: str, name: str = "") -> PhaseView:
    """The view of phase `phase_id`; one no plan named is created off the plan."""
    for phase in phases(view):
        if phase.id == phase_id:
            if name and not phase.name:
                phase.name = name
            return phase
    created = PhaseView(id=phase_id, name=name)
    view.off_plan.append(created)
    return created


def _running(phase: PhaseView) -> PhaseView:
    # Work on a phase that was never started (a log no actor wrote) still shows it at work.
    if phase.status == "pending":
        phase.status = "running"
    return phase
