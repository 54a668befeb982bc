"""Expert actors: they answer the requests of boards (speak, summarize, conclude) and teams (plan, execute, review, synthesize).

Every worker serves `<prefix>.actor.expert.*` in the queue group `experts`, so
a board or team on one worker may hear its experts from any other. A request
names its expert (`expert_id`, the subject's last token); the worker hands it
to that expert's virtual actor, which streams the model's answer (a speech,
a phase result or a synthesis, as chunk frames of the request's segment on the
session's feed) and replies with the whole text. Experts keep no state
between requests: everything they need comes with the request, which is why
any worker can answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import structlog

from bus import BusError
from schemas import (
    ErrorReply,
    ExpertResultChunk,
    ExpertResultChunkReset,
    ExpertSpeechChunk,
    ExpertSpeechChunkReset,
    TeamSynthesisChunk,
    TeamSynthesisChunkReset,
)
from schemas.experts import (
    BoardRequest,
    ExecutePhase,
    ExpertAnswer,
    ExpertRequest,
    Speak,
    SynthesizeTeam,
    TeamRequest,
)

from ..board import prompts as board_prompts
from ..context import WorkerContext
from ..errors import ProviderError
from ..llm import LLMRequest
from ..llm.fallback import collect
from ..quota import QUOTA_EXCEEDED, Admitted, QuotaUnavailable
from ..runtime import Actor, ActorHost
from ..team import prompts as team_prompts
from .ask import WORKING_INTERVAL, working

logger = structlog.get_logger("agentbus.experts")

QUEUE = "experts"

WITHDRAWN = ErrorReply(code="withdrawn", message="the board or team ended")


class Withdrawn(Exception):
    """The board or team an expert streams for ended (cancelled or failed): stop generating."""


Chunks = tuple[Callable[[str], msgspec.Struct], msgspec.Struct] | None
"""How a request's answer streams: a chunk frame for a piece of text, and the reset frame of its segment."""


class ExpertActor(Actor):
    """One expert of one board or team, answering one request at a time."""

    kind = "expert"

    def __init__(self, actor_id: str, host: ActorHost, ctx: WorkerContext) -> None:
        super().__init__(actor_id, host)
        self.ctx = ctx

    async def handle(self, message: Any) -> ExpertAnswer | ErrorReply:
        if isinstance(message, BoardRequest):
            structlog.contextvars.bind_contextvars(session_id=message.session_id, correlation_id=message.board_id)
            return await self._answer(message, message.board_id, board_prompts.llm_request(message))
        if isinstance(message, TeamRequest):
            structlog.contextvars.bind_contextvars(session_id=message.session_id, correlation_id=message.team_id)
            return await self._answer(message, message.team_id, team_prompts.llm_request(message))
        raise TypeError(f"expert actor cannot handle {type(message).__name__}")

    async def _answer(self, request: ExpertRequest, owner_id: str, llm: LLMRequest) -> ExpertAnswer | ErrorReply:
        """Answer for the board or team `owner_id`, unless it ended (then within one chunk)."""
        if owner_id in self.ctx.withdrawals:
            return WITHDRAWN
        feed = self.ctx.bus.subjects.session_evt(request.session_id)
        chunks = _chunks(request)
        streamed = False

        async def stream_chunk(text: str) -> None:
            nonlocal streamed
            if owner_id in self.ctx.withdrawals:
                raise Withdrawn(owner_id)
            if chunks is not None:
                streamed = True
                await self.ctx.bus.publish(feed, chunks[0](text))

        admitted = await self._admit(request, llm)
        if isinstance(admitted, ErrorReply):
            return admitted
        provider = self.ctx.providers.get(request.llm, self.ctx.provider)
        reporter = asyncio.create_task(self._report_working(request))
        try:
            answer = await collect(provider, llm, stream_chunk, timeout=request.timeout)
        except Withdrawn:
            logger.info("expert_withdrawn", expert=request.expert.name)
            await self.ctx.quotas.settle(admitted, 0)
            return WITHDRAWN
        except ProviderError as exc:
            logger.warning("expert_failed", expert=request.expert.name, error=str(exc))
            await self.ctx.quotas.settle(admitted, 0)
            if streamed and chunks is not None:
                # The caller asks again: the client drops this attempt's chunks instead of gluing two together.
                await self.ctx.bus.publish(feed, chunks[1])
            return ErrorReply(code="provider_failed", message=str(exc))
        finally:
            reporter.cancel()
        await self.ctx.quotas.settle(admitted, answer.usage.prompt_tokens + answer.usage.completion_tokens)
        if answer.truncated:
            logger.info("expert_answer_truncated", expert=request.expert.name, tokens=answer.usage.completion_tokens)
        return ExpertAnswer(
            content=answer.text,
            prompt_tokens=answer.usage.prompt_tokens,
            completion_tokens=answer.usage.completion_tokens,
            truncated=answer.truncated,
            charged_to=admitted.charged_to,
        )

    async def _admit(self, request: ExpertRequest, llm: LLMRequest) -> Admitted | ErrorReply:
        """Reserve the call's share of the asker's quotas, or the refusal to answer with (the call is not made)."""
        try:
            admitted = await self.ctx.quotas.admit(request.principal, llm)
        except QuotaUnavailable as exc:
            logger.warning("quota_unavailable", error=str(exc))
            message = f"the quota store did not answer ({exc.reason}); the model was not called"
            return ErrorReply(code="quota_unavailable", message=message)
        if isinstance(admitted, Admitted):
            return admitted
        return ErrorReply(code="quota_exceeded", message=QUOTA_EXCEEDED, quota_info=admitted)

    async def _report_working(self, request: ExpertRequest) -> None:
        """Tell the caller every `WORKING_INTERVAL` that this worker still answers (its silence means we died)."""
        report = working(request)
        if report is None:
            return
        subject = self.ctx.bus.subjects.actor("expert_call", request.call_id)
        while True:
            with contextlib.suppress(BusError):
                await self.ctx.bus.publish(subject, report)
            await asyncio.sleep(WORKING_INTERVAL)


def _chunks(request: ExpertRequest) -> Chunks:
    """The frames a request's answer streams as, or None for answers that do not stream (summaries, plans, reviews)."""
    match request:
        case Speak(board_id=board_id, round=round_, expert=expert):
            segment = request.segment or uuid.uuid4().hex[:12]
            return (
                lambda text: ExpertSpeechChunk(
                    board_id=board_id, round=round_, expert_name=expert.name, content=text, segment=segment
                ),
                ExpertSpeechChunkReset(board_id=board_id, round=round_, expert_name=expert.name, segment=segment),
            )
        case ExecutePhase(team_id=team_id, phase=phase, expert=member, segment=segment):
            return (
                lambda text: ExpertResultChunk(
                    team_id=team_id, phase_id=phase.id, expert_name=member.name, content=text, segment=segment
                ),
                ExpertResultChunkReset(team_id=team_id, phase_id=phase.id, expert_name=member.name, segment=segment),
            )
        case SynthesizeTeam(team_id=team_id, segment=segment):
            return (
                lambda text: TeamSynthesisChunk(team_id=team_id, content=text, segment=segment),
                TeamSynthesisChunkReset(team_id=team_id, segment=segment),
            )
    return None


def answer_experts(host: ActorHost) -> Callable[[ExpertRequest], Awaitable[ExpertAnswer | ErrorReply]]:
    """Return the request handler a worker serves on `subjects.all_actors("expert")` (queue `QUEUE`)."""

    async def answer(request: ExpertRequest) -> ExpertAnswer | ErrorReply:
        return await host.ask(ExpertActor.kind, request.expert_id, request)

    return answer
