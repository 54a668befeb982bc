"""The team actor: owns `team-<team_id>` and runs a pipeline of phases planned by a lead.

The pipeline runs in a driver task owned by the actor, so the mailbox stays
free for interventions and cancel. The driver runs every step `logic.next_steps`
names at once (independent phases concurrently, each on its member's expert
actor, on any worker), hands each outcome back to the actor as `StepDone`, and
the actor decides and records it only if it is still one of the team's next
steps: a late answer after a cancel, or a repeated one, is dropped. A
re-activated team replays its stream and the driver starts from the steps not
recorded, so finished phases are not run again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from bus import RequestFailed
from schemas import ExpertResultChunkReset, Principal, TeamInterventionAck, TeamSynthesisChunkReset, team_stream
from schemas.events import AnyEvent, PlanPhase, TeamDissolved, TeamExpert
from schemas.experts import (
    ExecutePhase,
    PhaseOutput,
    PlanTeam,
    ReviewPhase,
    SynthesizeTeam,
    TeamRequest,
)
from schemas.texts import ENGLISH, texts_for

from ..config import Role
from ..context import WorkerContext
from ..errors import ActorError, is_outage
from ..experts.ask import CallRefused, ask_expert
from ..experts.withdrawals import withdraw
from ..runtime import ActorHost, DrivenActor
from ..runtime.groups import CancelWork, Intervene
from . import logic
from .messages import (
    Answered,
    DriverGaveUp,
    NoAnswer,
    StartTeam,
    StepDone,
    TeamFinished,
)
from .plans import fallback_plan, normalize, parse_plan, parse_review
from .prompts import bounded, clip
from .routing import TeamRefused, TeamSpec

logger = structlog.get_logger("agentbus.team")

SYNTHESIS_SEGMENT = "synthesis"


class TeamActor(DrivenActor[logic.TeamState]):
    """One team pipeline; its id is the id of the user message that asked for it."""

    kind = "team"

    def __init__(self, actor_id: str, host: ActorHost, ctx: WorkerContext) -> None:
        super().__init__(
            actor_id,
            host,
            ctx,
            stream=team_stream(actor_id),
            state=logic.TeamState(team_id=actor_id),
            evolve=logic.evolve,
        )
        self._spec: TeamSpec | None = None
        """The team asked for, until its first plan records it."""
        self._principal: Principal | None = None
        """Who asked for the team (from the start request): whose quotas its experts' calls count against."""
        self._woken = asyncio.Event()
        """Set when the mailbox recorded something the driver must see (an intervention)."""
        self._texts = ENGLISH
        """The session's language, from the start request (a team re-activated by another message reports in English)."""

    async def handle(self, message: Any) -> Any:
        match message:
            case StartTeam():
                await self._start(message)
                return None
            case Intervene(content=content, idempotency_key=key):
                return await self._intervene(content, key)
            case CancelWork(reason=reason):
                return await self._end(logic.decide_cancel(self.state, reason))
            case StepDone():
                return await self._step_done(message)
            case DriverGaveUp(reason=reason, quota_info=quota_info):
                return await self._end(logic.decide_give_up(self.state, reason, quota_info))
        raise TypeError(f"team actor cannot handle {type(message).__name__}")

    def finished(self) -> TeamFinished | None:
        outcome = self.state.outcome
        if outcome is None:
            return None
        texts = self._texts
        if outcome.status == "completed":
            content = logic.final_answer(self.state, texts)
            return TeamFinished(team_id=self.id, user_message_id=self.id, content=content)
        code = "cancelled" if outcome.status == "cancelled" else "team_failed"
        if outcome.quota_info is not None:
            code = "quota_exceeded"
        ended = texts.team_cancelled if outcome.status == "cancelled" else texts.team_failed
        reason = ended.format(reason=outcome.reason)
        return TeamFinished(team_id=self.id, user_message_id=self.id, content=reason, failed=True, code=code)

    async def _start(self, request: StartTeam) -> None:
        self._texts = texts_for(request.locale)

        def failed(reason: str) -> list[AnyEvent]:
            return [TeamDissolved(team_id=self.id, status="failed", reason=reason)]

        if not await self.take_start(request.session_id, failed):
            return
        if isinstance(request.spec, TeamRefused):
            await self._end(failed(request.spec.message))
            return
        self._spec = request.spec
        self._principal = request.principal
        self._start_driver(self._drive(), f"team-{self.id}")

    async def _intervene(self, content: str, key: str | None) -> bool:
        if not self.state.running:
            self.report()  # the session may not have recorded the team's end yet
            return False
        events = logic.decide_intervention(self.state, content, key, self.ctx.config.team.max_replans)
        if events:
            await self.record(events, cause=self.id)
            self._woken.set()
        assert self.session_id is not None
        await self.ctx.bus.publish(
            self.ctx.bus.subjects.session_evt(self.session_id), TeamInterventionAck(target_id=self.id, content=content)
        )
        return True

    async def _step_done(self, done: StepDone) -> int | None:
        if done.step not in logic.next_steps(self.state):
            return None
        events = self._decide(done)
        return await self.record(events, cause=self.id) if events else None

    async def _end(self, events: list[AnyEvent]) -> bool:
        if not events:
            return False
        await self.record(events, cause=self.id)
        await self._stop_driver()
        await withdraw(self.ctx.bus, self.id)  # an expert still streaming for the team stops within a chunk
        return True

    def _decide(self, done: StepDone) -> list[AnyEvent]:
        """The events a step's outcome gives, judged on the team's state now."""
        state, team = self.state, self.ctx.config.team
        outcome = done.outcome
        match done.step:
            case logic.StartPhase() as step:
                return logic.decide_start(state, step)
            case logic.Plan() as step:
                if not isinstance(outcome, Answered):
                    return logic.decide_plan_failure(state, outcome.reason if outcome else "no answer")
                task, experts = self._task(), self._experts()
                members = [e for e in experts if e.role == "member"] or experts[:1]
                current = [p.phase for p in state.phases.values()]
                kept = [p.phase for p in state.phases.values() if p.status in ("completed", "running")]
                parsed = parse_plan(outcome.answer.content)
                if parsed is None:
                    logger.warning("team_plan_unreadable", revision=step.revision)
                    parsed = [p for p in current if p not in kept] if current else fallback_plan(task, members)
                phases = normalize(parsed, members, lead=experts[0], max_phases=team.max_phases, keep=kept)
                return logic.decide_plan(state, step, phases, task, experts, outcome.answer)
            case logic.Execute() as step:
                if isinstance(outcome, Answered):
                    return logic.decide_result(state, step, outcome.answer)
                reason = outcome.reason if outcome else "no answer"
                return logic.decide_phase_failure(state, step, reason, team.max_replans)
            case logic.ReviewStep() as step:
                if isinstance(outcome, Answered):
                    review = parse_review(outcome.answer.content)
                    return logic.decide_review(state, step, review, outcome.answer, team.max_revisions)
                return logic.decide_unreviewed(state, step, outcome.reason if outcome else "no answer")
            case logic.Synthesize():
                return logic.decide_synthesis(state, outcome.answer if isinstance(outcome, Answered) else None)
        raise TypeError(f"unknown team step {done.step!r}")

    async def _drive(self) -> None:
        """Run the team's next steps, concurrently where they are independent, until it ends."""
        structlog.contextvars.bind_contextvars(session_id=self.session_id, correlation_id=self.id)
        running: dict[logic.Step, asyncio.Task[None]] = {}
        resumed = True  # the steps found first may have been under way in an earlier incarnation
        try:
            while self.state.running:
                for step in logic.next_steps(self.state):
                    if _may_start(step, running):
                        running[step] = asyncio.create_task(self._run(step, resumed=resumed))
                resumed = False
                if not running:
                    # Unreachable by the logic; a clear failure beats a team that waits for ever.
                    self._give_up("internal error: the team had nothing left to do but had not ended")
                    return
                self._woken.clear()
                woken = asyncio.create_task(self._woken.wait())
                await asyncio.wait([*running.values(), woken], return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                for step, task in list(running.items()):
                    if task.done():
                        del running[step]
                        task.result()  # a step's failure is the driver's
        except Exception as exc:
            if is_outage(exc):
                # The database or NATS is gone: the team resumes from its stream when its work is asserted again.
                logger.warning("team_interrupted", error=str(exc))
                return
            # A bug: recorded as a failed team, so the user gets an answer instead of a hang.
            logger.exception("team_driver_crashed")
            self._give_up(f"internal error: {type(exc).__name__}")
        finally:
            for task in running.values():
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)

    async def _run(self, step: logic.Step, *, resumed: bool) -> None:
        """Do one step (ask its expert, if it needs one) and hand its outcome to the actor."""
        outcome: Answered | NoAnswer | None = None
        if not isinstance(step, logic.StartPhase):
            request = self._request(step)
            reset = self._reset(request)
            if resumed and reset is not None:
                await reset()  # chunks of an attempt that died with an earlier incarnation are discarded
            team = self.ctx.config.team
            try:
                answer = await ask_expert(
                    self.ctx.bus,
                    request,
                    attempts=team.expert_attempts,
                    margin=team.expert_margin,
                    before_retry=(lambda _attempt: reset()) if reset is not None else None,
                )
                outcome = Answered(answer=answer)
            except CallRefused as exc:
                # Over quota (or no quota store): no expert could call its model for this team, so it ends.
                quota_info = exc.refusal.quota_info
                await self.host.ask(self.kind, self.id, DriverGaveUp(reason=exc.reason, quota_info=quota_info))
                return
            except RequestFailed as exc:
                if not self.ctx.bus.connected:
                    raise  # NATS is gone, not the expert
                logger.warning("team_expert_unanswered", step=type(step).__name__, error=exc.reason)
                outcome = NoAnswer(reason=f"{request.expert.name} did not answer: {exc.reason}")
        position = await self.host.ask(self.kind, self.id, StepDone(step=step, outcome=outcome))
        if position is not None:
            await self.ctx.relayed(position)

    def _give_up(self, reason: str) -> None:
        try:
            self.host.tell(self.kind, self.id, DriverGaveUp(reason=reason))
        except ActorError:
            pass  # the worker is stopping: the team resumes from its stream after the restart

    def _task(self) -> str:
        if self.state.formed is not None:
            return self.state.formed.task
        assert self._spec is not None, "a team's first plan needs the task it was started with"
        return self._spec.task

    def _experts(self) -> list[TeamExpert]:
        """The team, lead first."""
        if self.state.formed is not None:
            return [self.state.lead, *(e for e in self.state.formed.experts if e.role != "lead")]
        assert self._spec is not None, "a team's first plan needs the experts it was started with"
        return list(self._spec.experts)

    def _request(self, step: logic.Step) -> TeamRequest:
        state = self.state
        experts = self._experts()
        lead = experts[0]
        match step:
            case logic.Plan(reason=reason):
                limit = self.ctx.config.limits.of("plan")
                members = [e for e in experts if e.role == "member"] or [lead]
                current = [p.phase for p in state.phases.values()]
                progress = bounded([self._output(p.phase) for p in state.phases.values()], limit.prompt_tokens)
                return PlanTeam(
                    **self._ask_fields(lead, "plan", ""),
                    members=members,
                    current=current,
                    progress=progress,
                    reason=reason,
                )
            case logic.Execute(phase_id=phase_id, attempt=attempt):
                phase = state.phases[phase_id]
                limit = self.ctx.config.limits.of("phase_result")
                inputs = [self._output(state.phases[dep].phase) for dep in phase.phase.depends_on]
                last_review = phase.reviews[-1].reasons if attempt > 1 and phase.reviews else []
                previous = phase.results[-1].content if attempt > 1 and phase.results else ""
                return ExecutePhase(
                    **self._ask_fields(
                        state.expert(phase.phase.assignee), "phase_result", f"{phase_id}.{state.revision}.{attempt}"
                    ),
                    phase=phase.phase,
                    inputs=bounded(inputs, limit.prompt_tokens // 2),
                    attempt=attempt,
                    previous=clip(previous, limit.prompt_tokens // 4),
                    review=last_review,
                )
            case logic.ReviewStep(phase_id=phase_id, attempt=attempt):
                phase = state.phases[phase_id]
                limit = self.ctx.config.limits.of("review")
                return ReviewPhase(
                    **self._ask_fields(lead, "review", ""),
                    phase=phase.phase,
                    result=clip(phase.results[-1].content, limit.prompt_tokens // 2),
                    attempt=attempt,
                    final=attempt > self.ctx.config.team.max_revisions,
                )
            case logic.Synthesize():
                limit = self.ctx.config.limits.of("synthesis")
                results = [self._output(p.phase) for p in state.phases.values()]
                return SynthesizeTeam(
                    **self._ask_fields(lead, "synthesis", SYNTHESIS_SEGMENT),
                    results=bounded(results, limit.prompt_tokens // 2),
                )
        raise TypeError(f"step {step!r} asks no expert")

    def _ask_fields(self, expert: TeamExpert, role: Role, segment: str) -> dict[str, Any]:
        """What every request of this team carries, for `expert` in `role`."""
        assert self.session_id is not None
        limit = self.ctx.config.limits.of(role)
        template = self.ctx.config.experts.get(expert.name)
        llm = template.llm if template else "default"
        endpoint = self.ctx.config.llm.get(llm)
        model = (template.model if template else None) or (endpoint.model if endpoint else self.ctx.default_model)
        fields: dict[str, Any] = {
            "expert_id": expert.expert_id,
            "team_id": self.id,
            "session_id": self.session_id,
            "expert": expert,
            "model": model,
            "llm": llm,
            "task": self._task(),
            "interventions": list(self.state.interventions),
            "segment": segment,
            "max_tokens": limit.max_tokens,
            "timeout": limit.timeout,
            "principal": self._principal,
        }
        return fields

    def _output(self, phase: PlanPhase) -> PhaseOutput:
        state = self.state.phases[phase.id]
        last = state.results[-1] if state.results else None
        return PhaseOutput(
            phase_id=phase.id,
            phase_name=phase.name,
            expert_name=last.expert_name if last else phase.assignee,
            status=state.status,
            content=last.content if last else "",
        )

    def _reset(self, request: TeamRequest) -> Callable[[], Awaitable[None]] | None:
        """The coroutine function that publishes the reset of the request's chunks, or None if it streams none."""
        assert self.session_id is not None
        feed = self.ctx.bus.subjects.session_evt(self.session_id)
        frame: ExpertResultChunkReset | TeamSynthesisChunkReset
        match request:
            case ExecutePhase(phase=phase, expert=member, segment=segment):
                frame = ExpertResultChunkReset(
                    team_id=self.id, phase_id=phase.id, expert_name=member.name, segment=segment
                )
            case SynthesizeTeam(segment=segment):
                frame = TeamSynthesisChunkReset(team_id=self.id, segment=segment)
            case _:
                return None

        async def publish() -> None:
            await self.ctx.bus.publish(feed, frame)

        return publish


def _may_start(step: logic.Step, running: dict[logic.Step, asyncio.Task[None]]) -> bool:
    """Whether `step` may start beside the steps still running.

    A step runs once its predecessor has finished, published position included
    (one step at a time per phase), so no chunk overtakes the event before it;
    a plan or the synthesis waits for everything.
    """
    if step in running:
        return False
    if isinstance(step, logic.Plan | logic.Synthesize):
        return not running
    phase_id = step.phase_id
    return all(getattr(other, "phase_id", None) != phase_id for other in running)
