"""REST send: `POST /sessions/{id}/messages` runs a whole turn through the bus and returns its answer.

The handler subscribes to the session's live subject *before* publishing the
command, so the answer cannot slip by; it then matches the recorded user
message by idempotency key, and the assistant message (or the turn's
failure) by the id of that user message.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from bus import BusError, TypedSubscription, publish_command
from bus.tracing import SpanKind, following, root
from projections import EventLog
from schemas import CommandRefused, ExecutionMode, FeedItem, RecordedEvent, SendMessage, codec, limits
from schemas.events import (
    AssistantMessage,
    FallbackError,
    MessageFailed,
    TurnCancelled,
    TurnCompleted,
    TurnFailed,
    UserIntervention,
    UserMessage,
)

from .answers import SESSION_PATH, answers, json_response, problem, read_body, refused, unavailable
from .auth import caller_of
from .context import GatewayContext
from .feed import resolve
from .openapi import ApiRoute
from .rest import existing_session

SeedExecutionMode = Literal["direct_chat", "skill_react", "rewoo", "reflexion", "team_collab"]
"""The seed's execution modes that are not ours; its REST ran all but `plan_exec` as ReAct."""
_MODES: dict[str, ExecutionMode] = {
    "direct": "direct",
    "react": "react",
    "plan_exec": "plan_exec",
    "direct_chat": "direct",
    "skill_react": "react",
    "rewoo": "react",
    "reflexion": "react",
    "team_collab": "react",
}


class SendBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The seed's `SendMessageRequest`, plus `model` and `idempotency_key` (a retry with the same key is answered once)."""

    content: str
    role: Literal["user"] = "user"
    """The seed's field; only user messages can be sent."""
    execution_mode: ExecutionMode | SeedExecutionMode | None = None
    model: str | None = None
    idempotency_key: str | None = None


class MessageResponse(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The seed's MessageResponse; `error_struct` and `fallback_status` only when the emergency tier answered."""

    message_id: str
    session_id: str
    role: str
    content: str
    tool_call_id: str | None
    agent_name: str | None
    created_at: str
    error_struct: FallbackError | None = None
    fallback_status: str | None = None


_REFUSED_STATUS = {"unknown_session": 404, "session_closed": 400, "too_many_turns": 429}
_FAILED_STATUS = {"quota_exceeded": 429, "quota_unavailable": 503}
"""A turn that failed for want of quota is the caller's limit, not the server's failure."""


async def send_message(request: Request) -> Response:
    ctx: GatewayContext = request.app.state.ctx
    body = await read_body(request, SendBody)
    if isinstance(body, Response):
        return body
    key = body.idempotency_key or uuid.uuid4().hex
    mode = None if body.execution_mode is None else _MODES[body.execution_mode]
    command = SendMessage(
        content=body.content,
        model=body.model,
        execution_mode=mode,
        idempotency_key=key,
        principal=caller_of(request),
    )
    if refusal := limits.check(command):
        return refused(refusal)
    session = await existing_session(request)
    if isinstance(session, Response):
        return session
    session_id = session.session_id
    if session.status == "closed":
        return problem(400, f"Session '{session_id}' is closed", "session_closed")
    if (down := await unavailable(ctx, database=False)) is not None:
        return down
    with root("POST /sessions/{session_id}/messages") as span:
        if span.is_recording():
            span.set_attribute("agentbus.session_id", session_id)
        return await _send(ctx, session_id, command, key)


async def _send(ctx: GatewayContext, session_id: str, command: SendMessage, key: str) -> Response:
    """Publish the command and wait for its answer on the session's live subject, subscribed first."""
    live = await ctx.bus.subscribe(ctx.bus.subjects.session_evt(session_id), codec.feed)
    try:
        try:
            await publish_command(ctx.bus, session_id, command)
        except BusError as exc:
            return problem(503, str(exc), "bus_unavailable")
        waiter = _Waiter(ctx.event_log, session_id, key)
        # A retried key may have been answered already (JetStream drops the duplicate): look in the log first.
        async for recorded in ctx.event_log.iter_session(session_id):
            if (response := waiter.see(recorded)) is not None:
                return response
        try:
            async with asyncio.timeout(ctx.answer_timeout):
                return await waiter.wait(live)
        except TimeoutError:
            detail = f"no answer within {ctx.answer_timeout:.0f} s; it will appear in the history"
            return problem(504, detail, "timeout", idempotency_key=key)
    finally:
        await live.close()


class _Waiter:
    """Follows the feed until the answer to the message sent with `key`."""

    def __init__(self, event_log: EventLog, session_id: str, key: str) -> None:
        self.event_log = event_log
        self.session_id = session_id
        self.key = key
        self.message_id: str | None = None
        self.completed: TurnCompleted | None = None

    async def wait(self, live: TypedSubscription[FeedItem]) -> Response:
        async for item in live:
            # The item's trace (the relay's publish) goes on here: this gateway's share of the hop.
            with following("gateway receive", live.trace, kind=SpanKind.CONSUMER):
                resolved = await resolve(self.event_log, self.session_id, item)  # an omitted answer still counts
                if resolved is not None and (response := self.see(resolved)) is not None:
                    return response
        return problem(503, "the live feed ended", "bus_unavailable")

    def see(self, item: FeedItem) -> Response | None:
        """Take one feed item; return the response once the answer (or the failure) is seen."""
        match item:
            case CommandRefused(idempotency_key=key, code=code, message=message) if key == self.key:
                return problem(_REFUSED_STATUS.get(code, 400), message, code, idempotency_key=key)
            case RecordedEvent(event=UserMessage(idempotency_key=key, message_id=message_id)) if key == self.key:
                self.message_id = message_id
            case RecordedEvent(event=UserIntervention(idempotency_key=key, target_id=target_id)) if key == self.key:
                # No answer of its own will come: the message joined the running board or team.
                detail = (
                    f"the message was taken as an intervention into the running board or team {target_id}; "
                    "its answer is that board's or team's final answer"
                )
                return problem(409, detail, "taken_as_intervention")
            case RecordedEvent(event=TurnCompleted(turn_id=turn_id) as completed) if turn_id == self.message_id:
                self.completed = completed
            case RecordedEvent(event=TurnFailed(turn_id=turn_id, message=message, code=code, quota_info=quota)) if (
                turn_id == self.message_id
            ):
                return problem(_FAILED_STATUS.get(code, 500), message, code, quota_info=quota)
            case RecordedEvent(event=TurnCancelled(turn_id=turn_id)) if turn_id == self.message_id:
                return problem(409, "the turn was cancelled", "turn_cancelled")
            case RecordedEvent(event=MessageFailed(reply_to=reply_to, code=code, reason=reason)) if (
                reply_to == self.message_id
            ):
                # A board or team that failed or was cancelled, or work given up: the session's record of its end.
                return problem(409 if code == "cancelled" else _FAILED_STATUS.get(code, 500), reason, code)
            case RecordedEvent(event=AssistantMessage(reply_to=reply_to) as answer) if (
                reply_to and reply_to == self.message_id
            ):
                return json_response(self._response(item, answer))
        return None

    def _response(self, recorded: RecordedEvent, answer: AssistantMessage) -> MessageResponse:
        error = self.completed.error if self.completed is not None else None
        return MessageResponse(
            message_id=answer.message_id,
            session_id=self.session_id,
            role="assistant",
            content=answer.content,
            tool_call_id=None,
            agent_name=answer.agent_name,
            created_at=recorded.recorded_at.isoformat(),
            error_struct=error,
            fallback_status=None if error is None else "emergency",
        )


route = ApiRoute(
    "/sessions/{session_id}/messages",
    send_message,
    "POST",
    summary="Send a message and wait for its answer",
    description=(
        "400 session_closed; 404 unknown_session; 409 turn_cancelled or taken_as_intervention (a board or team "
        "was running); 429 too_many_turns, or quota_exceeded (with `quota_info`); 500 the turn, board or team "
        "failed; 503 quota_unavailable (the quota store did not answer: the model was not called); 504 no answer within "
        "AGENTBUS_ANSWER_TIMEOUT (resend with the same idempotency_key to get it once it is recorded)."
    ),
    body=SendBody,
    path_params=SESSION_PATH,
    responses=answers(MessageResponse, 400, 404, 409, 413, 422, 429, 500, 504),
)
