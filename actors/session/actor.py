"""The session actor: owns `session-<sid>`, records user and assistant messages, starts turns."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import structlog

from schemas import (
    BOARD_AGENT,
    Cancel,
    CloseSession,
    CommandRefused,
    ConfirmationReply,
    CreateSession,
    ErrorReply,
    HumanReply,
    SendMessage,
    SessionReady,
    session_stream,
)
from schemas.events import AssistantMessage, UserMessage

from ..board.messages import BoardFinished, CancelBoard, Intervene, StartBoard
from ..board.plan import BoardRefused, is_board_message, plan_board
from ..context import WorkerContext
from ..runtime import ActorHost, EventSourcedActor
from ..turn.messages import StartTurn, TurnFinished
from .messages import Deliver
from .routing import MAX_RUNNING_TURNS, route_to_turn
from .state import (
    Accepted,
    AlreadyDone,
    Refused,
    SessionState,
    decide_close,
    decide_create,
    decide_send,
    evolve,
)

logger = structlog.get_logger("agentbus.session")


def new_id() -> str:
    return uuid.uuid4().hex


class SessionActor(EventSourcedActor[SessionState]):
    """One chat session. Its state is rebuilt from its stream on activation."""

    kind = "session"

    def __init__(self, actor_id: str, host: ActorHost, ctx: WorkerContext) -> None:
        super().__init__(
            actor_id,
            host,
            ctx,
            stream=session_stream(actor_id),
            state=SessionState(session_id=actor_id),
            evolve=evolve,
            session_id=actor_id,
        )
        # user message id -> futures of the command deliveries waiting for its answer
        self._waiting: dict[str, list[asyncio.Future[None]]] = {}
        # boards known to have ended without an answer (failed, cancelled): no longer open
        self._ended_boards: set[str] = set()
        # turns started and not yet finished (at most MAX_RUNNING_TURNS)
        self._running: set[str] = set()

    def busy(self) -> bool:
        return bool(self._waiting)

    async def on_passivate(self) -> None:
        for futures in self._waiting.values():
            for future in futures:
                if not future.done():
                    future.cancel()

    async def handle(self, message: Any) -> Any:
        if isinstance(message, Deliver) and await self._to_board(message.command):
            return None
        match message:
            case CreateSession():
                return await self._create(message)
            case Deliver(command=SendMessage() as command):
                return await self._send(command)
            case Deliver(command=CloseSession() as command):
                decision = decide_close(self.state, command)
                if isinstance(decision, Accepted):
                    await self.record(decision.events, cause=None)
                elif isinstance(decision, Refused):
                    await self._refuse(decision, None)
                return None
            case Deliver(command=Cancel() | HumanReply() | ConfirmationReply() as command):
                refusal = await route_to_turn(self.host, command, self._running, self.state.unanswered)
                if refusal is not None:
                    await self._refuse(refusal, None)
                return None
            case TurnFinished():
                await self._turn_finished(message)
                return None
            case BoardFinished():
                await self._board_finished(message)
                return None
        raise TypeError(f"session actor cannot handle {type(message).__name__}")

    async def _refuse(self, refusal: Refused, key: str | None) -> None:
        logger.info("command_refused", code=refusal.code, reason=refusal.message)
        frame = CommandRefused(code=refusal.code, message=refusal.message, idempotency_key=key)
        await self.ctx.bus.publish(self.ctx.bus.subjects.session_evt(self.id), frame)

    async def _create(self, command: CreateSession) -> SessionReady | ErrorReply:
        decision = decide_create(self.state, command)
        match decision:
            case Refused(code=code, message=text):
                return ErrorReply(code=code, message=text)
            case Accepted(events=events):
                position = await self.record(events, cause=None)
            case AlreadyDone():
                position = 0
        return SessionReady(session_id=self.id, agent_name=self.state.agent_name, position=position)

    async def _send(self, command: SendMessage) -> asyncio.Future[None] | None:
        decision = decide_send(self.state, command, new_id)
        match decision:
            case Refused():
                await self._refuse(decision, command.idempotency_key)
                return None
            case AlreadyDone(message_id=str() as message_id) if message_id in self.state.unanswered:
                pass  # a retry of a message still waiting for its answer: wait with it
            case Accepted(events=[UserMessage() as user]):
                if isinstance(plan := plan_board(user.content, self.ctx.config), BoardRefused):
                    await self._refuse(Refused(code=plan.code, message=plan.message), command.idempotency_key)
                    return None
                if plan is None and len(self._running) >= MAX_RUNNING_TURNS:
                    busy = f"{MAX_RUNNING_TURNS} turns are running; wait for one to finish"
                    await self._refuse(Refused(code="too_many_turns", message=busy), command.idempotency_key)
                    return None
                await self.record([user], cause=user.idempotency_key)
                message_id = user.message_id
            case _:
                return None  # a retry of a message already answered
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(message_id, []).append(future)
        if not self._start_board(message_id):
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
                # The conversation up to this message is what the turn answers.
                history=self.state.history[: pending.history_len],
                model=pending.message.model,
                execution_mode=pending.message.execution_mode,
            ),
        )
        self._running.add(message_id)

    async def _turn_finished(self, finished: TurnFinished) -> None:
        self._running.discard(finished.turn_id)
        if not finished.failed and finished.user_message_id in self.state.unanswered:
            await self.record(
                [
                    AssistantMessage(
                        message_id=new_id(),
                        content=finished.content,
                        agent_name=self.state.agent_name,
                        reply_to=finished.user_message_id,
                        turn_id=finished.turn_id,
                    )
                ],
                cause=finished.turn_id,
            )
        for future in self._waiting.pop(finished.user_message_id, []):
            if not future.done():
                future.set_result(None)

    def _start_board(self, message_id: str) -> bool:
        """Start (or resume) the board an `@board` message asks for; False if it asks for none."""
        message = self.state.unanswered[message_id].message
        plan = plan_board(message.content, self.ctx.config)
        if plan is None:
            return False
        self._ended_boards.discard(message_id)
        self.host.tell("board", message_id, StartBoard(session_id=self.id, user_message_id=message_id, plan=plan))
        return True

    def _open_board(self) -> str | None:
        """The board that may be running: the latest unanswered `@board` message not known to have ended."""
        for message_id in reversed(self.state.unanswered):
            if message_id not in self._ended_boards and is_board_message(
                self.state.unanswered[message_id].message.content
            ):
                return message_id
        return None

    async def _to_board(self, command: object) -> bool:
        """Give a command to the running board, if any: a message intervenes, a cancel ends it.

        Return False when no board runs (or the command is not for it); the
        board itself says whether it runs, as only its stream knows.
        """
        board_id = self._open_board()
        match command:
            case _ if board_id is None:
                return False
            case SendMessage(content=content, idempotency_key=key) if (
                content.strip() and (key or "") not in self.state.keys
            ):
                taken = await self.host.ask("board", board_id, Intervene(content=content, idempotency_key=key))
            case Cancel(turn_id=turn_id) if turn_id in (None, board_id):
                taken = await self.host.ask("board", board_id, CancelBoard())
            case _:
                return False
        if not taken:
            self._ended_boards.add(board_id)
        return bool(taken)

    async def _board_finished(self, finished: BoardFinished) -> None:
        if finished.failed:
            self._ended_boards.add(finished.board_id)
        elif finished.user_message_id in self.state.unanswered:
            answer = AssistantMessage(
                message_id=new_id(), content=finished.content, agent_name=BOARD_AGENT, reply_to=finished.user_message_id
            )
            await self.record([answer], cause=finished.board_id)
        for future in self._waiting.pop(finished.user_message_id, []):
            if not future.done():
                future.set_result(None)
