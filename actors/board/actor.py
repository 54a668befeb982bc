"""The board actor: owns `board-<board_id>` and holds a meeting of experts on a topic.

The meeting runs in a driver task owned by the actor, so the mailbox stays
free for interventions and cancel while experts speak. The driver asks the
next expert over NATS (`agentbus.actor.expert.<id>`), hands the answer back
to the actor as `StepDone`, and the actor records it only if it is still the
board's next step (`logic.step_done_by`): a late answer after a cancel,
or a repeated one, is dropped. A re-activated board replays its stream and
the driver starts from the first step not recorded.
"""

from __future__ import annotations

from typing import Any

import msgspec
import structlog

from bus import RequestFailed
from bus.tracing import child
from schemas import ExpertSpeechChunkReset, Principal, TeamInterventionAck, board_stream
from schemas.events import AnyEvent, BoardConcluded, BoardFailed, BoardStarted, ExpertSpeech, RoundSummary
from schemas.experts import BoardRequest, Conclude, ExpertAnswer, ExpertRequest, Speak, SummarizeRound, expert_id
from schemas.quotas import QuotaInfo
from schemas.texts import ENGLISH, texts_for

from ..config import Role
from ..context import WorkerContext
from ..errors import ActorError, is_outage
from ..experts.ask import CallRefused, ask_expert
from ..experts.withdrawals import withdraw
from ..runtime import ActorHost, DrivenActor
from ..runtime.groups import CancelWork, Intervene
from . import logic
from .conclusion import parse_conclusion
from .messages import BoardFinished, DriverGaveUp, StartBoard, StepDone
from .plan import BoardRefused
from .prompts import fit_transcript, split_consensus

logger = structlog.get_logger("agentbus.board")


class BoardActor(DrivenActor[logic.BoardState]):
    """One board meeting; its id is the id of the user message that asked for it."""

    kind = "board"

    def __init__(self, actor_id: str, host: ActorHost, ctx: WorkerContext) -> None:
        super().__init__(
            actor_id,
            host,
            ctx,
            stream=board_stream(actor_id),
            state=logic.BoardState(board_id=actor_id),
            evolve=logic.evolve,
        )
        self._texts = ENGLISH
        """The session's language, from the start request (a board re-activated by another message reports in English)."""
        self._principal: Principal | None = None
        """Who asked for the board (from the start request): whose quotas its model calls count against."""

    async def handle(self, message: Any) -> Any:
        match message:
            case StartBoard():
                await self._start(message)
                return None
            case Intervene(content=content, idempotency_key=key):
                return await self._intervene(content, key)
            case CancelWork(reason=reason):
                return await self._end(logic.decide_cancel(self.state, reason))
            case StepDone(event=event):
                return await self._step_done(event)
            case DriverGaveUp(reason=reason, quota_info=quota_info):
                if not self.state.running:
                    return False
                return await self._end([BoardFailed(board_id=self.id, reason=reason, quota_info=quota_info)])
        raise TypeError(f"board actor cannot handle {type(message).__name__}")

    def finished(self) -> BoardFinished | None:
        match self.state.outcome:
            case BoardConcluded() as concluded:
                content = logic.final_answer(concluded, self._texts)
                return BoardFinished(board_id=self.id, user_message_id=self.id, content=content)
            case BoardFailed(reason=reason, cancelled=cancelled, quota_info=quota_info):
                code = "cancelled" if cancelled else "quota_exceeded" if quota_info is not None else "board_failed"
                return BoardFinished(board_id=self.id, user_message_id=self.id, content=reason, failed=True, code=code)
        return None

    async def _start(self, request: StartBoard) -> None:
        self._texts = texts_for(request.locale)
        self._principal = request.principal
        if not await self.take_start(request.session_id, lambda reason: [BoardFailed(board_id=self.id, reason=reason)]):
            return
        resumed = self.state.started is not None  # by another incarnation, perhaps on another worker
        if not resumed:
            plan = request.plan
            if isinstance(plan, BoardRefused):
                await self._end([BoardFailed(board_id=self.id, reason=plan.message)])
                return
            started = BoardStarted(board_id=self.id, topic=plan.topic, experts=plan.experts, max_rounds=plan.max_rounds)
            await self.ctx.relayed(await self.record([started], cause=self.id))
        self._start_driver(self._drive(resumed=resumed), f"board-{self.id}")

    async def _intervene(self, content: str, key: str | None) -> bool:
        if not self.state.running:
            self.report()  # the session may not have recorded the board's end yet
            return False
        events = logic.decide_intervention(self.state, content, key)
        if events:
            await self.record(events, cause=self.id)
        assert self.session_id is not None
        await self.ctx.bus.publish(
            self.ctx.bus.subjects.session_evt(self.session_id), TeamInterventionAck(target_id=self.id, content=content)
        )
        return True

    async def _step_done(self, event: AnyEvent) -> int | None:
        if not logic.step_done_by(self.state, event):
            return None
        return await self.record([event], cause=self.id)

    async def _end(self, events: list[AnyEvent]) -> bool:
        if not events:
            return False
        await self.record(events, cause=self.id)
        await self._stop_driver()
        await withdraw(self.ctx.bus, self.id)  # an expert still speaking to the board stops within a chunk
        return True

    async def _drive(self, *, resumed: bool) -> None:
        """Run the meeting's remaining steps, one expert request and one recorded event at a time.

        A resumed board first discards what its earlier incarnation may have
        streamed of the step it resumes at: that speech is asked anew.
        """
        structlog.contextvars.bind_contextvars(session_id=self.session_id, correlation_id=self.id)
        try:
            while not isinstance(step := logic.next_step(self.state), logic.Finished):
                if resumed and isinstance(step, logic.SpeakStep):
                    await self._discard_speech(step)
                resumed = False
                with child("board step") as span:  # one speech or summary: asked, recorded, relayed
                    if span.is_recording():
                        span.set_attributes({"agentbus.board_id": self.id, "agentbus.step": type(step).__name__})
                    answer = await self._ask(self._request(step))
                    position = await self.host.ask(self.kind, self.id, StepDone(event=self._outcome(step, answer)))
                    if position is None:
                        return
                    await self.ctx.relayed(position)
        except CallRefused as exc:
            # Over quota (or no quota store): no expert may call its model for this board, so it ends.
            self._give_up(exc.reason, exc.refusal.quota_info)
        except RequestFailed as exc:
            if not self.ctx.bus.connected:
                logger.warning("board_interrupted", error=str(exc))  # NATS is gone, not the experts
                return
            logger.warning("board_expert_unreachable", error=str(exc))
            self._give_up(f"an expert did not answer: {exc.reason}")
        except Exception as exc:
            if is_outage(exc):
                # The database or NATS is gone: the board resumes from its stream when its work is asserted again.
                logger.warning("board_interrupted", error=str(exc))
                return
            # A bug: recorded as a failed board, so the user gets an answer instead of a hang.
            logger.exception("board_driver_crashed")
            self._give_up(f"internal error: {type(exc).__name__}")

    def _give_up(self, reason: str, quota_info: QuotaInfo | None = None) -> None:
        try:
            self.host.tell(self.kind, self.id, DriverGaveUp(reason=reason, quota_info=quota_info))
        except ActorError:
            pass  # the worker is stopping: the board resumes from its stream after the restart

    def _request(self, step: logic.NextStep) -> BoardRequest:
        started = self.state.started
        assert started is not None and self.session_id is not None
        kind: type[BoardRequest]
        role: Role
        match step:
            case logic.SpeakStep(round=round_, expert=expert):
                kind, who, role = Speak, expert, "speech"
            case logic.SummarizeStep(round=round_):
                kind, who, role = SummarizeRound, self.state.moderator, "summary"
            case logic.ConcludeStep(total_rounds=round_):
                kind, who, role = Conclude, self.state.moderator, "conclusion"
        limit = self.ctx.config.limits.of(role)
        template = self.ctx.config.experts.get(who.name)
        llm = template.llm if template else "default"
        endpoint = self.ctx.config.llm.get(llm)
        return kind(
            expert_id=expert_id(self.id, who.name),
            board_id=self.id,
            session_id=self.session_id,
            expert=who,
            model=(template.model if template else None) or (endpoint.model if endpoint else self.ctx.default_model),
            llm=llm,
            topic=started.topic,
            round=round_,
            max_rounds=started.max_rounds,
            transcript=fit_transcript(self.state.transcript, limit.prompt_tokens),
            max_tokens=limit.max_tokens,
            timeout=limit.timeout,
            principal=self._principal,
        )

    def _outcome(self, step: logic.NextStep, answer: ExpertAnswer) -> AnyEvent:
        event: ExpertSpeech | RoundSummary | BoardConcluded
        match step:
            case logic.SpeakStep(round=round_, expert=expert):
                event = ExpertSpeech(
                    board_id=self.id,
                    round=round_,
                    expert_name=expert.name,
                    expert_avatar=expert.avatar,
                    expert_color=expert.color,
                    content=answer.content.strip(),
                )
            case logic.SummarizeStep(round=round_):
                moderator = self.state.moderator
                text, consensus = split_consensus(answer.content)
                event = RoundSummary(
                    board_id=self.id,
                    round=round_,
                    moderator_name=moderator.name,
                    moderator_avatar=moderator.avatar,
                    moderator_color=moderator.color,
                    content=text,
                    consensus=consensus,
                )
            case _:
                summaries = [summary.content for summary in self.state.summaries]
                event = parse_conclusion(
                    answer.content, board_id=self.id, total_rounds=len(summaries), summaries=summaries
                )
        return msgspec.structs.replace(
            event,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            truncated=answer.truncated,
            charged_to=answer.charged_to,
        )

    async def _discard_speech(self, step: logic.SpeakStep) -> None:
        assert self.session_id is not None
        # The earlier incarnation's segment died with it: the reset of no segment discards every attempt.
        frame = ExpertSpeechChunkReset(board_id=self.id, round=step.round, expert_name=step.expert.name, segment="")
        await self.ctx.bus.publish(self.ctx.bus.subjects.session_evt(self.session_id), frame)

    async def _ask(self, request: BoardRequest) -> ExpertAnswer:
        board = self.ctx.config.board
        assert self.session_id is not None
        feed = self.ctx.bus.subjects.session_evt(self.session_id)

        async def reset(attempt: ExpertRequest) -> None:
            # The expert's worker died mid-speech: clients drop that attempt's chunks before the next streams.
            if isinstance(attempt, Speak):
                frame = ExpertSpeechChunkReset(
                    board_id=self.id, round=attempt.round, expert_name=attempt.expert.name, segment=attempt.segment
                )
                await self.ctx.bus.publish(feed, frame)

        return await ask_expert(
            self.ctx.bus,
            request,
            attempts=board.expert_attempts,
            margin=board.expert_margin,
            before_retry=reset,
            fresh_segments=True,
        )
