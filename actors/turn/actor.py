"""The agent-turn actor: owns `turn-<turn_id>` and answers one user message with a ReAct loop.

The loop runs in a `ReactDriver` task the actor owns, so the mailbox stays
free for cancel, confirmations and answers while the model streams or the
turn waits for the user. Only the actor appends to the stream: the driver
proposes events, the actor records them if the state has not moved on.
Every step is an event, so a turn re-activated after a crash continues from
its last recorded step without repeating recorded tool calls.
"""

from __future__ import annotations

import asyncio
from typing import Any

from schemas import Principal, turn_stream
from schemas.events import AnyEvent, TurnCancelled, TurnCompleted, TurnFailed

from ..context import WorkerContext
from ..llm import LLMMessage
from ..runtime import ActorHost, DrivenActor
from .driver import ReactDriver, utcnow
from .logic import decide_cancel, decide_confirmation, decide_reply, decide_start
from .messages import AnswerQuestion, CancelTurn, Propose, ResolveConfirmation, StartTurn, TurnFinished
from .phases import PhasePolicy
from .setup import SetupRefused, TurnSetup, resolve_setup
from .state import TurnState, evolve


class TurnActor(DrivenActor[TurnState]):
    """One agent turn; its id is the id of the user message it answers."""

    kind = "turn"

    def __init__(self, actor_id: str, host: ActorHost, ctx: WorkerContext) -> None:
        super().__init__(actor_id, host, ctx, stream=turn_stream(actor_id), state=TurnState(), evolve=evolve)
        self._changed = asyncio.Event()
        """Set on every recorded event, so a driver waiting for the user wakes up."""

    async def handle(self, message: Any) -> Any:
        match message:
            case StartTurn():
                await self._start(message)
                return None
            case Propose(events=events, based_on=version):
                if version != self.state.version or self.state.outcome is not None or not events:
                    return False
                await self.record(events, cause=self.id)
                return True
            case CancelTurn():
                events = decide_cancel(self.state, self.id)
                if events:
                    await self._stop_driver()
                    await self.record(events, cause=self.id)
                return bool(events)
            case ResolveConfirmation(confirmation_id=confirmation_id, approved=approved):
                return await self._answer(decide_confirmation(self.state, confirmation_id, approved, utcnow()))
            case AnswerQuestion(request_id=request_id, content=content):
                return await self._answer(decide_reply(self.state, request_id, content))
        raise TypeError(f"turn actor cannot handle {type(message).__name__}")

    async def record(self, events: list[AnyEvent], *, cause: str | None) -> int:
        position = await super().record(events, cause=cause)
        self._changed.set()
        return position

    def finished(self) -> TurnFinished | None:
        # The turn's id is the id of the user message it answers.
        match self.state.outcome:
            case TurnCompleted(content=content):
                return TurnFinished(turn_id=self.id, user_message_id=self.id, content=content)
            case TurnFailed(message=message, code=code):
                return TurnFinished(turn_id=self.id, user_message_id=self.id, content=message, failed=True, code=code)
            case TurnCancelled():
                return TurnFinished(
                    turn_id=self.id, user_message_id=self.id, content="cancelled", failed=True, code="cancelled"
                )
        return None

    async def _answer(self, events: list[AnyEvent] | None) -> bool:
        """Record the user's answer; False if this turn asked nothing of that id."""
        if events is None:
            return False
        if events:
            await self.record(events, cause=self.id)
        return True

    async def _start(self, request: StartTurn) -> None:
        if not await self.take_start(
            request.session_id, lambda reason: [TurnFailed(turn_id=self.id, message=reason, code="gave_up")]
        ):
            return
        content = request.history[-1].content if request.history else ""
        setup = resolve_setup(
            self.ctx.config, request.agent_name, content, model=request.model, execution_mode=request.execution_mode
        )
        if isinstance(setup, SetupRefused):
            await self.record([TurnFailed(turn_id=self.id, message=setup.message, code=setup.code)], cause=self.id)
            return
        if self.state.started is None:
            phases = PhasePolicy(self.ctx.config.plan_exec)
            await self.record(decide_start(setup, self.id, request.user_message_id, phases), cause=self.id)
        driver = self._driver_for(setup, request.history, request.principal)
        self._start_driver(driver.run(), f"turn-{self.id}")

    def _driver_for(self, setup: TurnSetup, history: list[LLMMessage], principal: Principal | None) -> ReactDriver:
        async def propose(events: list[AnyEvent], based_on: int) -> bool:
            return bool(await self.host.ask(self.kind, self.id, Propose(events=events, based_on=based_on)))

        async def relayed() -> None:
            await self.ctx.relayed(self.position)

        assert self.session_id is not None
        return ReactDriver(
            turn_id=self.id,
            session_id=self.session_id,
            ctx=self.ctx,
            setup=setup,
            history_of=lambda: history,
            state_of=lambda: self.state,
            propose=propose,
            changed=self._changed,
            relayed=relayed,
            principal=principal,
        )
