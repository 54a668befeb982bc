"""The agent-turn actor: owns `turn-<turn_id>` and answers one user message.

Generation runs in a child task owned by the actor, so the mailbox stays free
while tokens stream (later: cancel, replies to questions). Tokens are frames
published live; only the whole answer is persisted.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import structlog

from projections import NewEvent
from schemas import EventMeta, Token
from schemas.events import AnyEvent, TurnCompleted, TurnFailed, TurnStarted

from .context import WorkerContext
from .errors import ProviderError
from .llm import LLMRequest, TextDelta, Usage
from .messages import Generated, GenerationFailed, StartTurn, TurnFinished
from .runtime import Actor, ActorHost

log = structlog.get_logger("agentbus.turn")


def turn_stream(turn_id: str) -> str:
    return f"turn-{turn_id}"


class TurnState(msgspec.Struct, kw_only=True):
    """What a turn's own events say about it."""

    version: int = 0
    started: TurnStarted | None = None
    outcome: TurnCompleted | TurnFailed | None = None


def evolve_turn(state: TurnState, event: AnyEvent) -> TurnState:
    """Apply one of the turn's own events (mutating and returning `state`)."""
    state.version += 1
    match event:
        case TurnStarted():
            state.started = event
        case TurnCompleted() | TurnFailed():
            state.outcome = event
    return state


class TurnActor(Actor):
    """One agent turn; re-activated after a crash it generates again from its last recorded step."""

    kind = "turn"

    def __init__(self, actor_id: str, host: ActorHost, ctx: WorkerContext) -> None:
        super().__init__(actor_id, host)
        self.ctx = ctx
        self.state = TurnState()
        self.stream = turn_stream(actor_id)
        self._request: StartTurn | None = None
        self._generation: asyncio.Task[None] | None = None

    async def on_activate(self) -> None:
        async for recorded in self.ctx.log.iter_stream(self.stream):
            evolve_turn(self.state, recorded.event)

    def busy(self) -> bool:
        return self._generation is not None and not self._generation.done()

    async def on_passivate(self) -> None:
        if self._generation is not None:
            self._generation.cancel()
            await asyncio.gather(self._generation, return_exceptions=True)

    async def handle(self, message: Any) -> None:
        match message:
            case StartTurn():
                await self._start(message)
            case Generated():
                await self._finish(
                    TurnCompleted(
                        turn_id=self.id,
                        content=message.content,
                        tier=self.ctx.provider.name,
                        prompt_tokens=message.prompt_tokens,
                        completion_tokens=message.completion_tokens,
                    )
                )
            case GenerationFailed():
                await self._finish(TurnFailed(turn_id=self.id, message=message.message, code="provider_failed"))
            case _:
                raise TypeError(f"turn actor cannot handle {type(message).__name__}")

    async def _record(self, request: StartTurn, event: AnyEvent) -> None:
        meta = EventMeta(causation_id=request.user_message_id, correlation_id=request.user_message_id, actor=f"turn:{self.id}")
        recorded = await self.ctx.log.append(
            self.stream, [NewEvent(event=event, session_id=request.session_id, meta=meta)], expected_version=self.state.version
        )
        evolve_turn(self.state, recorded[0].event)

    async def _start(self, request: StartTurn) -> None:
        self._request = request
        if self.state.outcome is not None:
            self._report(request, self.state.outcome)
            return
        if self.busy():
            return
        if self.state.started is None:
            await self._record(
                request,
                TurnStarted(
                    turn_id=self.id,
                    user_message_id=request.user_message_id,
                    agent_name=request.agent_name,
                    model=request.model,
                ),
            )
        self._generation = asyncio.create_task(self._generate(request), name=f"generate-{self.id}")

    async def _generate(self, request: StartTurn) -> None:
        feed = self.ctx.bus.subjects.session_evt(request.session_id)
        parts: list[str] = []
        usage = Usage(prompt_tokens=0, completion_tokens=0)
        llm_request = LLMRequest(model=request.model, messages=request.history)
        try:
            async for delta in self.ctx.provider.stream(llm_request):
                match delta:
                    case TextDelta(text=text):
                        parts.append(text)
                        await self.ctx.bus.publish(feed, Token(turn_id=self.id, content=text))
                    case Usage():
                        usage = delta
        except ProviderError as exc:
            log.warning("generation_failed", error=str(exc))
            self.host.tell(self.kind, self.id, GenerationFailed(message=str(exc)))
            return
        except Exception as exc:  # recorded as a failed turn, so the user gets an answer
            log.exception("generation_crashed")
            self.host.tell(self.kind, self.id, GenerationFailed(message=f"internal error: {type(exc).__name__}"))
            return
        self.host.tell(
            self.kind,
            self.id,
            Generated(content="".join(parts), prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens),
        )

    async def _finish(self, outcome: TurnCompleted | TurnFailed) -> None:
        if self._request is None or self.state.outcome is not None:
            return
        await self._record(self._request, outcome)
        self._report(self._request, outcome)

    def _report(self, request: StartTurn, outcome: TurnCompleted | TurnFailed) -> None:
        failed = isinstance(outcome, TurnFailed)
        self.host.tell(
            "session",
            request.session_id,
            TurnFinished(
                turn_id=self.id,
                user_message_id=request.user_message_id,
                content=outcome.message if isinstance(outcome, TurnFailed) else outcome.content,
                failed=failed,
            ),
        )
