"""The session actor: owns `session-<sid>`, records user and assistant messages, starts turns."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import structlog

from projections import EventLog, NewEvent
from schemas import (
    Cancel,
    CloseSession,
    CommandRefused,
    ConfirmationReply,
    CreateSession,
    ErrorReply,
    EventMeta,
    HumanReply,
    SendMessage,
    SessionReady,
)
from schemas.events import AnyEvent, AssistantMessage, UserMessage

from .context import WorkerContext
from .messages import Deliver, StartTurn, TurnFinished
from .runtime import Actor, ActorHost
from .session_state import Accepted, AlreadyDone, Refused, SessionState, decide_close, decide_create, decide_send, evolve

log = structlog.get_logger("agentbus.session")


def session_stream(session_id: str) -> str:
    return f"session-{session_id}"


def new_id() -> str:
    return uuid.uuid4().hex


class SessionActor(Actor):
    """One chat session. Its state is rebuilt from its stream on activation."""

    kind = "session"

    def __init__(self, actor_id: str, host: ActorHost, ctx: WorkerContext) -> None:
        super().__init__(actor_id, host)
        self.ctx = ctx
        self.state = SessionState(session_id=actor_id)
        self.stream = session_stream(actor_id)
        # user message id -> futures of the command deliveries waiting for its answer
        self._waiting: dict[str, list[asyncio.Future[None]]] = {}

    @property
    def log(self) -> EventLog:
        return self.ctx.log

    async def on_activate(self) -> None:
        async for recorded in self.log.iter_stream(self.stream):
            evolve(self.state, recorded.event)

    def busy(self) -> bool:
        return bool(self._waiting)

    async def on_passivate(self) -> None:
        for futures in self._waiting.values():
            for future in futures:
                if not future.done():
                    future.cancel()

    async def handle(self, message: Any) -> Any:
        match message:
            case CreateSession():
                return await self._create(message)
            case Deliver(command=SendMessage() as command):
                return await self._send(command)
            case Deliver(command=CloseSession() as command):
                decision = decide_close(self.state, command)
                if isinstance(decision, Accepted):
                    await self._record(decision.events)
                elif isinstance(decision, Refused):
                    await self._refuse(decision, None)
                return None
            case Deliver(command=Cancel() | HumanReply() | ConfirmationReply() as command):
                await self._refuse(Refused(code="unsupported", message=f"{type(command).__name__} is not supported yet"), None)
                return None
            case TurnFinished():
                await self._turn_finished(message)
                return None
        raise TypeError(f"session actor cannot handle {type(message).__name__}")

    async def _record(self, events: list[AnyEvent], *, causation_id: str | None = None) -> int:
        meta = EventMeta(causation_id=causation_id, correlation_id=causation_id, actor=f"session:{self.id}")
        recorded = await self.log.append(
            self.stream,
            [NewEvent(event=event, session_id=self.id, meta=meta) for event in events],
            expected_version=self.state.version,
        )
        for item in recorded:
            evolve(self.state, item.event)
        return recorded[-1].position

    async def _refuse(self, refusal: Refused, key: str | None) -> None:
        log.info("command_refused", code=refusal.code, reason=refusal.message)
        frame = CommandRefused(code=refusal.code, message=refusal.message, idempotency_key=key)
        await self.ctx.bus.publish(self.ctx.bus.subjects.session_evt(self.id), frame)

    async def _create(self, command: CreateSession) -> SessionReady | ErrorReply:
        decision = decide_create(self.state, command)
        match decision:
            case Refused(code=code, message=text):
                return ErrorReply(code=code, message=text)
            case Accepted(events=events):
                position = await self._record(events)
            case AlreadyDone():
                position = 0
        return SessionReady(session_id=self.id, agent_name=self.state.agent_name, position=position)

    async def _send(self, command: SendMessage) -> asyncio.Future[None] | None:
        decision = decide_send(self.state, command, new_id)
        match decision:
            case Refused():
                await self._refuse(decision, command.idempotency_key)
                return None
            case AlreadyDone(message_id=message_id):
                if message_id is None or message_id not in self.state.unanswered:
                    return None
            case Accepted(events=[UserMessage() as user]):
                await self._record([user], causation_id=user.idempotency_key)
                message_id = user.message_id
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(message_id, []).append(future)
        self._start_turn(message_id)
        return future

    def _start_turn(self, message_id: str) -> None:
        pending = self.state.unanswered[message_id]
        self.host.tell(
            "turn",
            message_id,
            StartTurn(
                session_id=self.id,
                user_message_id=message_id,
                agent_name=self.state.agent_name,
                model=pending.message.model or self.ctx.default_model,
                # The conversation up to this message is what the turn answers.
                history=self.state.history[: pending.history_len],
            ),
        )

    async def _turn_finished(self, finished: TurnFinished) -> None:
        if not finished.failed and finished.user_message_id in self.state.unanswered:
            await self._record(
                [
                    AssistantMessage(
                        message_id=new_id(),
                        content=finished.content,
                        agent_name=self.state.agent_name,
                        reply_to=finished.user_message_id,
                        turn_id=finished.turn_id,
                    )
                ],
                causation_id=finished.turn_id,
            )
        for future in self._waiting.pop(finished.user_message_id, []):
            if not future.done():
                future.set_result(None)
