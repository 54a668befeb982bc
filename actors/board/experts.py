"""Expert actors: they answer a board's speak / summarize / conclude requests over NATS.

Every worker serves `<prefix>.actor.expert.*` in the queue group `experts`, so
a board on one worker may hear its experts from any other. A request names
its expert (`expert_id`, the subject's last token); the worker hands it to that
expert's virtual actor, which streams the model's answer (a speech as
`expert_speech_chunk` frames on the session's feed) and replies with the
whole text. Experts keep no state between requests: everything they need
comes with the request, which is why any worker can answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from schemas import ErrorReply, ExpertSpeechChunk, ExpertSpeechChunkReset
from schemas.experts import Conclude, ExpertAnswer, BoardRequest, Speak, SummarizeRound

from ..context import WorkerContext
from ..errors import ProviderError
from ..llm.fallback import collect
from ..runtime import Actor, ActorHost
from .prompts import llm_request

logger = structlog.get_logger("agentbus.experts")

QUEUE = "experts"


def expert_id(board_id: str, name: str) -> str:
    """The id (and subject token) of one expert of one board."""
    return f"{board_id}-{name}"


class ExpertActor(Actor):
    """One expert of one board, answering one request at a time."""

    kind = "expert"

    def __init__(self, actor_id: str, host: ActorHost, ctx: WorkerContext) -> None:
        super().__init__(actor_id, host)
        self.ctx = ctx

    async def handle(self, message: Any) -> ExpertAnswer | ErrorReply:
        match message:
            case Speak() | SummarizeRound() | Conclude():
                return await self._answer(message)
        raise TypeError(f"expert actor cannot handle {type(message).__name__}")

    async def _answer(self, request: BoardRequest) -> ExpertAnswer | ErrorReply:
        structlog.contextvars.bind_contextvars(session_id=request.session_id, correlation_id=request.board_id)
        feed = self.ctx.bus.subjects.session_evt(request.session_id)
        segment = uuid.uuid4().hex[:12]
        streamed = False

        async def stream_chunk(text: str) -> None:
            nonlocal streamed
            if isinstance(request, Speak):
                streamed = True
                chunk = ExpertSpeechChunk(
                    board_id=request.board_id,
                    round=request.round,
                    expert_name=request.expert.name,
                    content=text,
                    segment=segment,
                )
                await self.ctx.bus.publish(feed, chunk)

        provider = self.ctx.providers.get(request.llm, self.ctx.provider)
        try:
            answer = await collect(provider, llm_request(request), stream_chunk, timeout=request.timeout)
        except ProviderError as exc:
            logger.warning("expert_failed", expert=request.expert.name, error=str(exc))
            if streamed:
                # The board asks again: the client drops this attempt's chunks instead of gluing two together.
                reset = ExpertSpeechChunkReset(
                    board_id=request.board_id, round=request.round, expert_name=request.expert.name, segment=segment
                )
                await self.ctx.bus.publish(feed, reset)
            return ErrorReply(code="provider_failed", message=str(exc))
        if answer.truncated:
            logger.info("expert_answer_truncated", expert=request.expert.name, tokens=answer.usage.completion_tokens)
        return ExpertAnswer(
            content=answer.text,
            prompt_tokens=answer.usage.prompt_tokens,
            completion_tokens=answer.usage.completion_tokens,
            truncated=answer.truncated,
        )


def answer_experts(host: ActorHost) -> Callable[[BoardRequest], Awaitable[ExpertAnswer | ErrorReply]]:
    """Return the request handler a worker serves on `subjects.all_actors("expert")` (queue `QUEUE`)."""

    async def answer(request: BoardRequest) -> ExpertAnswer | ErrorReply:
        return await host.ask(ExpertActor.kind, request.expert_id, request)

    return answer
