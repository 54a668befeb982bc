"""The session actor: owns `session-<sid>`, records user and assistant messages, starts turns, boards and teams.

Everything it decides comes from its own events: which messages still wait
for an answer, hence which turns run (the cap) and which board or team is
open (where an intervention or a cancel goes). Every accepted message ends with a recorded
answer or a recorded `message_failed`, so nothing stays unanswered for ever.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec
import structlog

from schemas import (
    BOARD_AGENT,
    TEAM_AGENT,
    Cancel,
    CloseSession,
    CommandRefused,
    ConfirmationReply,
    CreateSession,
    ErrorReply,
    HumanReply,
    RenameSession,
    SendMessage,
    SessionReady,
    session_stream,
)
from schemas.events import AssistantMessage, MessageFailed, UserMessage
from schemas.texts import Texts, texts_for

from ..board.messages import BoardFinished, StartBoard
from ..board.plan import BoardRefused, plan_board
from ..context import WorkerContext
from ..runtime import ActorHost, EventSourcedActor
from ..runtime.groups import CancelWork, Intervene
from ..team.messages import StartTeam, TeamFinished
from ..team.routing import TeamRefused, team_spec
from ..turn.messages import CancelTurn, StartTurn, TurnFinished
from .messages import Abandon, Deliver
from .routing import route_to_turn
from .shown import shown_as
from .state import (
    Accepted,
    AlreadyDone,
    Refused,
    SessionState,
    decide_close,
    decide_create,
    decide_rename,
    decide_send,
    evolve,
    group_kind,
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
        # user message id -> resolved once its answer (or failure) is recorded; the worker acks the command then
        self._waiting: dict[str, asyncio.Future[None]] = {}

    def busy(self) -> bool:
        return bool(self._waiting)

    async def on_passivate(self) -> None:
        for future in self._waiting.values():
            future.cancel()

    async def handle(self, message: Any) -> Any:
        if isinstance(message, Deliver) and await self._to_group(message.command):
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
                    await self._refuse(decision, command.idempotency_key)
                return None
            case Deliver(command=RenameSession() as command):
                decision = decide_rename(self.state, command)
                if isinstance(decision, Accepted):
                    await self.record(decision.events, cause=None)
                elif isinstance(decision, Refused):
                    await self._refuse(decision, command.idempotency_key)
                return None
            case Deliver(command=Cancel() | HumanReply() | ConfirmationReply() as command):
                running = self.state.running_turns()
                refusal = await route_to_turn(self.host, command, running, self.state.unanswered)
                if refusal is not None:
                    await self._refuse(refusal, command.idempotency_key)
                return None
            case TurnFinished(user_message_id=message_id, failed=failed, content=content, code=code):
                answer = (
                    None
                    if failed
                    else AssistantMessage(
                        message_id=new_id(),
                        content=content,
                        agent_name=self.state.agent_name,
                        reply_to=message_id,
                        turn_id=message_id,
                    )
                )
                await self._finish(message_id, answer, code, content)
                return None
            case BoardFinished(user_message_id=message_id, failed=failed, content=content, code=code):
                answer = (
                    None
                    if failed
                    else AssistantMessage(
                        message_id=new_id(), content=content, agent_name=BOARD_AGENT, reply_to=message_id
                    )
                )
                await self._finish(message_id, answer, code, content)
                return None
            case TeamFinished(user_message_id=message_id, failed=failed, content=content, code=code):
                answer = (
                    None
                    if failed
                    else AssistantMessage(
                        message_id=new_id(), content=content, agent_name=TEAM_AGENT, reply_to=message_id
                    )
                )
                await self._finish(message_id, answer, code, content)
                return None
            case Abandon(key=key, reason=reason):
                if key is not None and key in self.state.keys:
                    await self._abandon(self.state.keys[key], reason)
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
        """Accept a message and start its work; the future resolves once its answer is recorded.

        A retry of a message still waiting for its answer (a redelivery, or the
        worker re-asserting a command it holds) starts its work again: a turn
        or board at work ignores that, one that died resumes from its log.
        """
        texts = self._texts()
        decision = decide_send(self.state, command, new_id, texts)
        match decision:
            case Refused():
                await self._refuse(decision, command.idempotency_key)
                return None
            case AlreadyDone(message_id=str() as message_id) if message_id in self.state.unanswered:
                pass
            case Accepted(events=[UserMessage() as user]):
                if isinstance(plan := plan_board(user.content, self.ctx.config, texts), BoardRefused):
                    await self._refuse(Refused(code=plan.code, message=plan.message), command.idempotency_key)
                    return None
                if isinstance(team := team_spec(user.content, self.ctx.config, user.message_id, texts), TeamRefused):
                    await self._refuse(Refused(code=team.code, message=team.message), command.idempotency_key)
                    return None
                cap = self.ctx.config.session.max_running_turns
                if plan is None and team is None and len(self.state.running_turns()) >= cap:
                    busy = texts.too_many_turns.format(cap=cap)
                    await self._refuse(Refused(code="too_many_turns", message=busy), command.idempotency_key)
                    return None
                shown, routing = shown_as(user.content, self.ctx.config)
                user = msgspec.structs.replace(user, shown=shown, routing=routing)
                await self.record([user], cause=user.idempotency_key)
                message_id = user.message_id
            case _:
                return None  # a retry of a message already answered
        future = self._waiting.get(message_id)
        if future is None or future.done():
            future = self._waiting[message_id] = asyncio.get_running_loop().create_future()
        self._start_work(message_id)
        return future

    def _locale(self) -> str:
        """The session's language: its metadata's `locale`, else the configured one."""
        return self.state.locale or self.ctx.config.session.locale

    def _texts(self) -> Texts:
        return texts_for(self._locale())

    def _start_work(self, message_id: str) -> None:
        """Start (or resume) the board, the team or the turn that answers a message."""
        pending = self.state.unanswered[message_id]
        plan = plan_board(pending.message.content, self.ctx.config)
        if plan is not None:
            start_board = StartBoard(
                session_id=self.id,
                user_message_id=message_id,
                plan=plan,
                locale=self._locale(),
                principal=pending.message.principal,
            )
            self.host.tell("board", message_id, start_board)
            return
        spec = team_spec(pending.message.content, self.ctx.config, message_id)
        if spec is not None:
            start_team = StartTeam(
                session_id=self.id,
                user_message_id=message_id,
                spec=spec,
                locale=self._locale(),
                principal=pending.message.principal,
            )
            self.host.tell("team", message_id, start_team)
            return
        start = StartTurn(
            session_id=self.id,
            user_message_id=message_id,
            agent_name=self.state.agent_name,
            # The conversation up to this message is what the turn answers.
            history=self.state.history[: pending.history_len],
            model=pending.message.model,
            execution_mode=pending.message.execution_mode,
            principal=pending.message.principal,
        )
        self.host.tell("turn", message_id, start)

    async def _finish(self, message_id: str, answer: AssistantMessage | None, code: str, reason: str) -> None:
        """Record how a message ended (its answer, or why it has none) and release whoever waits for it."""
        if message_id in self.state.unanswered:
            ending = answer or MessageFailed(reply_to=message_id, code=code, reason=reason)
            await self.record([ending], cause=message_id)
        future = self._waiting.pop(message_id, None)
        if future is not None and not future.done():
            future.set_result(None)

    async def _abandon(self, message_id: str, reason: str) -> None:
        """Give up on a message whose work outlived its limit: stop the work, record the failure."""
        if message_id not in self.state.unanswered:
            return
        logger.warning("work_abandoned", message_id=message_id, reason=reason)
        kind = group_kind(self.state.unanswered[message_id].message.content)
        if kind is None:
            self.host.tell("turn", message_id, CancelTurn())
        else:
            self.host.tell(kind, message_id, CancelWork(reason=reason))
        await self._finish(message_id, None, "gave_up", reason)

    async def _to_group(self, command: object) -> bool:
        """Give a command to the running board or team, if any: a message intervenes, a cancel ends it.

        Return False when none runs (or the command is not for it); the board
        or team itself says whether it runs, as only its stream knows.
        """
        group = self.state.open_group()
        if group is None:
            return False
        kind, group_id = group
        match command:
            case SendMessage(content=content, idempotency_key=key) if (
                content.strip() and (key or "") not in self.state.keys
            ):
                taken = await self.host.ask(kind, group_id, Intervene(content=content, idempotency_key=key))
            case Cancel(turn_id=turn_id) if turn_id in (None, group_id):
                taken = await self.host.ask(kind, group_id, CancelWork())
            case _:
                return False
        return bool(taken)
