"""The team actor's logic as pure functions: `evolve` folds its events, `next_steps` plans, `decide_*` judge.

A team's whole progress is in its events, so `next_steps` of a re-activated
team names exactly the work not yet recorded: after a crash in phase 2 the
finished phases are not run again and the interrupted one is asked again.
Phases whose dependencies are done are all ready at once, so independent
phases run concurrently.
"""

from __future__ import annotations

from typing import Literal, TypeVar

import msgspec

from schemas.events import (
    AnyEvent,
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
    TeamExpert,
    TeamFormed,
    TeamSynthesis,
    UserIntervention,
)
from schemas.experts import ExpertAnswer
from schemas.quotas import QuotaInfo
from schemas.texts import ENGLISH, Texts

from .plans import Review, contracts

PhaseStatus = Literal["pending", "running", "completed", "failed"]

HANDOFF_CHARS = 600
"""How much of a handed-over result a `collaboration_notice` quotes."""


class PhaseState(msgspec.Struct, kw_only=True):
    """One phase of the current plan, as its events say."""

    phase: PlanPhase
    status: PhaseStatus = "pending"
    results: list[ExpertResult] = []
    reviews: list[ReviewResult] = []
    steps: int = 0


class TeamState(msgspec.Struct, kw_only=True):
    """What a team's own events say about it. Mutable: `evolve` updates it in place."""

    team_id: str
    version: int = 0
    formed: TeamFormed | None = None
    revision: int = 0
    phases: dict[str, PhaseState] = {}
    """The current plan's phases, in dependency order."""
    interventions: list[str] = []
    intervention_keys: set[str] = set()
    replans: int = 0
    replanning: Replanning | None = None
    """A replan asked for and not yet made (the next `plan_update` makes it)."""
    synthesis: TeamSynthesis | None = None
    outcome: TeamDissolved | None = None

    @property
    def running(self) -> bool:
        return self.outcome is None

    @property
    def lead(self) -> TeamExpert:
        assert self.formed is not None, "a team has a lead once formed"
        return next((e for e in self.formed.experts if e.role == "lead"), self.formed.experts[0])

    @property
    def members(self) -> list[TeamExpert]:
        """Who executes phases: the members, or the lead alone in a team of one."""
        assert self.formed is not None
        return [e for e in self.formed.experts if e.role == "member"] or [self.lead]

    def expert(self, name: str) -> TeamExpert:
        assert self.formed is not None
        return next((e for e in self.formed.experts if e.name == name), self.lead)


def evolve(state: TeamState, event: AnyEvent) -> TeamState:
    """Apply one of the team's own events (mutating and returning `state`)."""
    state.version += 1
    phase = state.phases.get(getattr(event, "phase_id", None) or "")
    match event:
        case TeamFormed():
            state.formed = event
        case PlanUpdate(revision=revision, plan_phases=planned):
            state.revision = revision
            state.replanning = None
            # Phases done or under way keep their state; the others start afresh (a failed one is retried).
            previous = state.phases
            state.phases = {}
            for planned_phase in planned:
                kept = previous.get(planned_phase.id)
                keep = kept is not None and kept.status in ("completed", "running")
                state.phases[planned_phase.id] = kept if keep and kept else PhaseState(phase=planned_phase)
        case PhaseStarted() if phase:
            phase.status = "running"
        case ExpertStep() if phase:
            phase.steps += 1
        case ExpertResult() if phase:
            phase.results.append(event)
        case ReviewResult() if phase:
            phase.reviews.append(event)
        case PhaseCompleted() if phase:
            phase.status = "completed"
        case PhaseFailed() if phase:
            phase.status = "failed"
        case Replanning():
            state.replans += 1
            state.replanning = event
        case UserIntervention(content=content, idempotency_key=key):
            state.interventions.append(content)
            if key:
                state.intervention_keys.add(key)
        case TeamSynthesis():
            state.synthesis = event
        case TeamDissolved():
            state.outcome = event
    return state


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """The lead makes plan `revision` (1: the first plan; later: a replan for `reason`)."""

    revision: int
    reason: str = ""


class StartPhase(msgspec.Struct, frozen=True, kw_only=True):
    """A phase whose dependencies are done begins (no model call: its start, hand-offs and brief)."""

    phase_id: str


class Execute(msgspec.Struct, frozen=True, kw_only=True):
    """The phase's assignee produces result `attempt`."""

    phase_id: str
    attempt: int


class ReviewStep(msgspec.Struct, frozen=True, kw_only=True):
    """The lead reviews result `attempt` of the phase."""

    phase_id: str
    attempt: int


class Synthesize(msgspec.Struct, frozen=True, kw_only=True):
    """Every phase is done: the lead writes the answer."""


Step = Plan | StartPhase | Execute | ReviewStep | Synthesize


def next_steps(state: TeamState) -> list[Step]:
    """Every step that can run now and is not recorded yet (several when phases are independent)."""
    if not state.running:
        return []
    if state.formed is None:
        return [Plan(revision=1)]
    steps: list[Step] = []
    for phase in state.phases.values():
        if phase.status != "running":
            continue
        done = len(phase.results)
        if done == len(phase.reviews):
            steps.append(Execute(phase_id=phase.phase.id, attempt=done + 1))
        else:
            steps.append(ReviewStep(phase_id=phase.phase.id, attempt=done))
    if state.replanning is not None:
        # New phases wait for the new plan; the plan waits for the phases under way.
        return steps or [Plan(revision=state.revision + 1, reason=state.replanning.reason)]
    for phase in state.phases.values():
        deps = [state.phases.get(dep) for dep in phase.phase.depends_on]
        if phase.status == "pending" and all(dep is not None and dep.status == "completed" for dep in deps):
            steps.append(StartPhase(phase_id=phase.phase.id))
    if not steps and all(p.status == "completed" for p in state.phases.values()) and state.synthesis is None:
        steps.append(Synthesize())
    return steps


def decide_plan(
    state: TeamState, step: Plan, phases: list[PlanPhase], task: str, experts: list[TeamExpert], answer: ExpertAnswer
) -> list[AnyEvent]:
    """Record plan `step.revision`: the team's forming (first plan), the plan, its contract and its steps."""
    events: list[AnyEvent] = []
    lead = experts[0].name
    reason = step.reason or "initial plan"
    update = PlanUpdate(team_id=state.team_id, revision=step.revision, plan_phases=phases, reason=reason)
    if step.revision == 1:
        formed = TeamFormed(team_id=state.team_id, task=task, lead_expert=lead, experts=experts, plan_phases=phases)
        events += [_costing(formed, answer), update]
    else:
        events.append(_costing(update, answer))
    events.append(
        CollaborationContractDefined(team_id=state.team_id, revision=step.revision, contracts=contracts(phases, lead))
    )
    events += [
        PlanStep(
            team_id=state.team_id,
            revision=step.revision,
            step=index,
            phase_id=phase.id,
            phase_name=phase.name,
            assignee=phase.assignee,
            depends_on=list(phase.depends_on),
        )
        for index, phase in enumerate(phases, start=1)
    ]
    return events


def decide_start(state: TeamState, step: StartPhase) -> list[AnyEvent]:
    """Start a phase: who works on it, the results handed to them, and their brief as the first step."""
    phase = state.phases[step.phase_id].phase
    member = state.expert(phase.assignee)
    events: list[AnyEvent] = [
        PhaseStarted(
            team_id=state.team_id,
            phase_id=phase.id,
            phase_name=phase.name,
            expert_id=member.expert_id,
            expert_name=member.name,
            expert_color=member.color,
        )
    ]
    for dep in phase.depends_on:
        source = state.phases[dep]
        result = source.results[-1].content if source.results else ""
        events.append(
            CollaborationNotice(
                team_id=state.team_id,
                from_phase_id=dep,
                from_expert=source.phase.assignee,
                to_phase_id=phase.id,
                to_expert=member.name,
                content=result[:HANDOFF_CHARS],
            )
        )
    inputs = ", ".join(state.phases[dep].phase.name for dep in phase.depends_on)
    brief = f"Working on {phase.name}: {phase.goal or phase.name}"
    events.append(_step(state, phase.id, member, brief + (f" (building on {inputs})" if inputs else "")))
    return events


def decide_result(state: TeamState, step: Execute, answer: ExpertAnswer) -> list[AnyEvent]:
    """Record the assignee's result for the phase."""
    phase = state.phases[step.phase_id].phase
    member = state.expert(phase.assignee)
    result = ExpertResult(
        team_id=state.team_id,
        phase_id=phase.id,
        expert_id=member.expert_id,
        expert_name=member.name,
        expert_color=member.color,
        content=answer.content.strip(),
        attempt=step.attempt,
    )
    return [_costing(result, answer)]


def decide_review(
    state: TeamState, step: ReviewStep, review: Review, answer: ExpertAnswer, max_revisions: int
) -> list[AnyEvent]:
    """Record the lead's review, its risks, and what follows: the phase done, or a revision asked for.

    A revision is asked at most `max_revisions` times; after that a `revise`
    verdict completes the phase unaccepted.
    """
    phase = state.phases[step.phase_id].phase
    lead = state.lead
    reviewed = ReviewResult(
        team_id=state.team_id,
        phase_id=phase.id,
        reviewer=lead.name,
        verdict=review.verdict,
        reasons=review.reasons,
        attempt=step.attempt,
    )
    events: list[AnyEvent] = [_costing(reviewed, answer)]
    events += [
        RiskFlagged(team_id=state.team_id, phase_id=phase.id, risk=r.risk, severity=r.severity, raised_by=lead.name)
        for r in review.risks
    ]
    if review.verdict == "revise" and step.attempt <= max_revisions:
        member = state.expert(phase.assignee)
        reasons = "; ".join(review.reasons) or "the lead asked for another attempt"
        events.append(_step(state, phase.id, member, f"Revising {phase.name} after review: {reasons}"))
    else:
        events.append(
            PhaseCompleted(
                team_id=state.team_id,
                phase_id=phase.id,
                phase_name=phase.name,
                attempts=step.attempt,
                accepted=review.verdict == "accept",
            )
        )
    return events


def decide_unreviewed(state: TeamState, step: ReviewStep, reason: str) -> list[AnyEvent]:
    """The lead could not review: the phase completes unaccepted, and the missing review is flagged."""
    phase = state.phases[step.phase_id].phase
    return [
        RiskFlagged(
            team_id=state.team_id,
            phase_id=phase.id,
            risk=f"{phase.name} was not reviewed: {reason}",
            raised_by=state.lead.name,
        ),
        PhaseCompleted(
            team_id=state.team_id, phase_id=phase.id, phase_name=phase.name, attempts=step.attempt, accepted=False
        ),
    ]


def decide_phase_failure(state: TeamState, step: Execute, reason: str, max_replans: int) -> list[AnyEvent]:
    """A phase got no result: the lead replans (once for failures before it does), or the team fails once the replans are used up."""
    phase = state.phases[step.phase_id].phase
    events: list[AnyEvent] = [
        PhaseFailed(team_id=state.team_id, phase_id=phase.id, phase_name=phase.name, reason=reason)
    ]
    if state.replanning is not None:
        return events  # the replan asked for already will see this failure too
    if state.replans < max_replans:
        why = f"phase {phase.name} failed: {reason}"
        events.append(Replanning(team_id=state.team_id, reason=why, trigger="phase_failed"))
    else:
        failed = f"phase {phase.name} failed ({reason}) and the {max_replans} replans allowed are used up"
        events.append(TeamDissolved(team_id=state.team_id, status="failed", reason=failed))
    return events


def decide_plan_failure(state: TeamState, reason: str) -> list[AnyEvent]:
    """The lead could not plan: the team ends."""
    return [TeamDissolved(team_id=state.team_id, status="failed", reason=f"the lead could not plan: {reason}")]


def decide_synthesis(state: TeamState, answer: ExpertAnswer | None) -> list[AnyEvent]:
    """Record the lead's synthesis (empty when the lead gave none) and dissolve the team."""
    content = answer.content.strip() if answer is not None else ""
    synthesis = TeamSynthesis(team_id=state.team_id, content=content)
    return [
        _costing(synthesis, answer) if answer is not None else synthesis,
        TeamDissolved(team_id=state.team_id, status="completed"),
    ]


def decide_intervention(state: TeamState, content: str, key: str | None, max_replans: int) -> list[AnyEvent]:
    """Take a user message into the running team once per key; the lead replans on it while replans remain."""
    if not state.running or state.formed is None or (key is not None and key in state.intervention_keys):
        return []
    events: list[AnyEvent] = [UserIntervention(target_id=state.team_id, content=content, idempotency_key=key)]
    open_work = any(phase.status != "completed" for phase in state.phases.values())
    if open_work and state.replanning is None and state.replans < max_replans:
        events.append(Replanning(team_id=state.team_id, reason=f"user intervention: {content}", trigger="intervention"))
    return events


def decide_cancel(state: TeamState, reason: str = "cancelled by the user") -> list[AnyEvent]:
    """End a running team as cancelled; one that ended is left as it is."""
    if not state.running:
        return []
    return [TeamDissolved(team_id=state.team_id, status="cancelled", reason=reason)]


def decide_give_up(state: TeamState, reason: str, quota_info: QuotaInfo | None = None) -> list[AnyEvent]:
    """End a running team as failed (its driver could not go on; `quota_info`: a call was over that quota)."""
    if not state.running:
        return []
    return [TeamDissolved(team_id=state.team_id, status="failed", reason=reason, quota_info=quota_info)]


NO_RESULT = ENGLISH.team_no_result


def final_answer(state: TeamState, texts: Texts = ENGLISH) -> str:
    """The session's answer: the synthesis, else one section per phase result, else a clear "no result"."""
    if state.synthesis is not None and state.synthesis.content.strip():
        return state.synthesis.content.strip()
    sections = [
        f"### {phase.phase.name}\n\n{phase.results[-1].content}"
        for phase in state.phases.values()
        if phase.results and phase.results[-1].content.strip()
    ]
    return "\n\n".join(sections) or texts.team_no_result


def _step(state: TeamState, phase_id: str, member: TeamExpert, content: str) -> ExpertStep:
    return ExpertStep(
        team_id=state.team_id,
        phase_id=phase_id,
        expert_id=member.expert_id,
        expert_name=member.name,
        expert_color=member.color,
        content=content,
        step=state.phases[phase_id].steps + 1,
    )


Costed = TypeVar("Costed", TeamFormed, PlanUpdate, ExpertResult, ReviewResult, TeamSynthesis)


def _costing(event: Costed, answer: ExpertAnswer) -> Costed:
    """`event` with what the model call that wrote it took."""
    return msgspec.structs.replace(
        event,
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=answer.completion_tokens,
        truncated=answer.truncated,
        charged_to=answer.charged_to,
    )
