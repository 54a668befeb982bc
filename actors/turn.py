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
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from schemas.events import AnyEvent, TurnCancelled, TurnCompleted, TurnFailed

from .context import WorkerContext
from .llm import ChatMessage
from .messages import StartTurn, TurnFinished
from .phases import PhasePolicy
from .react import ReactDriver, utcnow
from .recording import record
from .runtime import ActorHost, DrivenActor
from .turn_logic import decide_cancel, decide_confirmation, decide_reply, decide_start
from .turn_messages import AnswerQuestion, CancelTurn, Propose, ResolveConfirmation
from .turn_setup import SetupRefused, TurnSetup, resolve_setup
from .turn_state import TurnState, evolve

log = structlog.get_logger("agentbus.turn")

Relayed = Callable[[int], Awaitable[object]]
"""Wait until the log is published live up to a position (so no token overtakes a recorded step)."""


def turn_stream(turn_id: str) -> str:
    return f"turn-{turn_id}"


class TurnActor(DrivenActor):
    """One agent turn; its id is the id of the user message it answers."""

    kind = "turn"

    def __init__(self, actor_id: str, host: ActorHost, ctx: WorkerContext, relayed: Relayed) -> None:
        super().__init__(actor_id, host)
        self.ctx = ctx
        self.state = TurnState()
        self.stream = turn_stream(actor_id)
        self.session_id: str | None = None
        self._request: StartTurn | None = None
        self._changed = asyncio.Event()
        self._relayed = relayed
        self._position = 0

    async def on_activate(self) -> None:
        async for recorded in self.ctx.log.iter_stream(self.stream):
            self.session_id = recorded.session_id
            self._position = recorded.position
            evolve(self.state, recorded.event)

    async def handle(self, message: Any) -> Any:
        match message:
            case StartTurn():
                await self._start(message)
                return None
            case Propose(events=events, based_on=version):
                if version != self.state.version or self.state.outcome is not None or not events:
                    return False
                await self._record(events)
                return True
            case CancelTurn():
                events = decide_cancel(self.state, self.id)
                if events:
                    await self._stop_driver()
                    await self._record(events)
                return bool(events)
            case ResolveConfirmation(confirmation_id=confirmation_id, approved=approved):
                return await self._answer(decide_confirmation(self.state, confirmation_id, approved, utcnow()))
            case AnswerQuestion(request_id=request_id, content=content):
                return await self._answer(decide_reply(self.state, request_id, content))
        raise TypeError(f"turn actor cannot handle {type(message).__name__}")

    async def _answer(self, events: list[AnyEvent] | None) -> bool:
        """Record the user's answer; False if this turn asked nothing of that id."""
        if events is None:
            return False
        if events:
            await self._record(events)
        return True

    async def _record(self, events: list[AnyEvent]) -> None:
        assert self.session_id is not None, "a turn records events once it knows its session"
        recorded = await record(
            self.ctx.log,
            f"turn:{self.id}",
            self.stream,
            self.session_id,
            events,
            version=self.state.version,
            cause=self.id,
        )
        for item in recorded:
            evolve(self.state, item.event)
        self._position = recorded[-1].position
        self._changed.set()
        if self.state.outcome is not None:
            self._report()

    async def _start(self, request: StartTurn) -> None:
        self._request = request
        self.session_id = self.session_id or request.session_id
        if self.state.outcome is not None:
            self._report()
            return
        if self.busy():
            return
        content = request.history[-1].content if request.history else ""
        setup = resolve_setup(
            self.ctx.config, request.agent_name, content, model=request.model, execution_mode=request.execution_mode
        )
        if isinstance(setup, SetupRefused):
            await self._record([TurnFailed(turn_id=self.id, message=setup.message, code=setup.code)])
            return
        if self.state.started is None:
            await self._record(
                decide_start(setup, self.id, request.user_message_id, PhasePolicy(self.ctx.config.plan_exec))
            )
        self._start_driver(self._driver_for(setup, request.history).run(), f"turn-{self.id}")

    def _driver_for(self, setup: TurnSetup, history: list[ChatMessage]) -> ReactDriver:
        async def propose(events: list[AnyEvent], based_on: int) -> bool:
            return bool(await self.host.ask(self.kind, self.id, Propose(events=events, based_on=based_on)))

        async def relayed() -> None:
            await self._relayed(self._position)

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
        )

    def _report(self) -> None:
        # The turn's id is the id of the user message it answers.
        outcome = self.state.outcome
        if self.session_id is None or outcome is None:
            return
        match outcome:
            case TurnCompleted(content=content):
                finished = TurnFinished(turn_id=self.id, user_message_id=self.id, content=content)
            case TurnFailed(message=message):
                finished = TurnFinished(turn_id=self.id, user_message_id=self.id, content=message, failed=True)
            case TurnCancelled():
                finished = TurnFinished(turn_id=self.id, user_message_id=self.id, content="cancelled", failed=True)
        self.host.tell("session", self.session_id, finished)
