"""REST under /api/v1/chat: sessions, their messages, the raw event log, boards and teams.

Each route is an `ApiRoute` that declares the msgspec types its handler decodes
and encodes; `/openapi.json` is generated from them. Bad input is a 4xx, never a
5xx: a body is read no further than `limits.MAX_BODY_BYTES`, nesting is bounded,
the command it becomes passes `limits.check`, and query numbers are
`limits.Position`/`limits.Count`. A database failure in any handler is answered by
the app's one handler for `EventLogError` (503 `service_unavailable`), not here.

A seed client's bodies are accepted: `CreateSessionRequest` with nested
`metadata` (kept as sent) and `SendMessageRequest` (see `send.py`). How a
request is read and answered (bodies, queries, problems) is in `answers.py`.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from bus import BusError, publish_command
from projections import MessageView, SessionView
from projections.boards import BoardView
from projections.replay import load_board, load_team
from projections.teams import TeamView
from schemas import (
    CloseSession,
    CreateSession,
    ErrorReply,
    InvalidId,
    Metadata,
    RecordedEvent,
    codec,
    limits,
    validate_id,
)

from .answers import (
    REFUSAL_STATUS,
    SESSION_PATH,
    Id,
    answers,
    json_response,
    parse_query,
    problem,
    read_body,
    refused,
    unavailable,
)
from .auth import caller_of, may_see, sees_all
from .context import GatewayContext
from .erasure import erase
from .openapi import ApiRoute

MAX_EVENTS_PAGE = 10_000
"""`GET …/events` returns at most this many events, whatever `limit` asks."""


class CreateSessionBody(msgspec.Struct, frozen=True, kw_only=True):
    """The seed's `CreateSessionRequest`; `session_id` makes a retried create idempotent."""

    agent_name: str = "assistant"
    metadata: dict[str, Any] | None = None
    session_id: str | None = None


class SessionsQuery(msgspec.Struct, frozen=True, kw_only=True):
    q: Annotated[
        str,
        msgspec.Meta(max_length=200, pattern=r"^[^\x00]*$", description="sessions whose title or a message has it"),
    ] = ""


class MessagesQuery(msgspec.Struct, frozen=True, kw_only=True):
    limit: limits.Count | None = None
    offset: limits.Position = 0


class EventsQuery(msgspec.Struct, frozen=True, kw_only=True):
    after: limits.Position = 0
    limit: Annotated[limits.Count, msgspec.Meta(description=f"at most {MAX_EVENTS_PAGE} are returned")] = 1000


class AtQuery(msgspec.Struct, frozen=True, kw_only=True):
    at: Annotated[limits.Position, msgspec.Meta(description="as it stood at this log position")] | None = None


class CloseQuery(msgspec.Struct, frozen=True, kw_only=True):
    erase: Annotated[
        bool,
        msgspec.Meta(description="erase it instead (admins and the service): its events become one tombstone"),
    ] = False


class Closed(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    status: str
    """`closed`, or `erased` (`?erase=true`)"""
    session_id: str
    events_erased: int | None = None
    """`?erase=true`: how many events the tombstone replaced"""
    position: int | None = None
    """`?erase=true`: the tombstone's position in the log"""


_ERROR_STATUS = {
    "unknown_agent": 404,
    "session_exists": 409,
    "invalid_session_id": 400,
    "invalid_message": 400,
    **REFUSAL_STATUS,
}


def _ctx(request: Request) -> GatewayContext:
    return request.app.state.ctx


async def _session_id(request: Request) -> str | Response:
    try:
        return validate_id(request.path_params["session_id"])
    except InvalidId as exc:
        return problem(400, str(exc), "invalid_session_id")


async def existing_session(request: Request) -> SessionView | Response:
    """The session named in the path, read after the projector caught up; else the 400/404 to answer.

    Another user's session is answered as one that does not exist, so nothing tells that it does.
    """
    ctx = _ctx(request)
    session_id = await _session_id(request)
    if isinstance(session_id, Response):
        return session_id
    await ctx.read_models.wait_caught_up(ctx.event_log)
    view = await ctx.read_models.get_session(session_id)
    if view is None or not may_see(caller_of(request), view.owner):
        return problem(404, f"Session '{session_id}' not found", "unknown_session")
    return view


async def list_sessions(request: Request) -> Response:
    ctx = _ctx(request)
    try:
        query = parse_query(request, SessionsQuery)
    except msgspec.ValidationError as exc:
        return problem(400, f"invalid query: {exc}", "invalid_query")
    await ctx.read_models.wait_caught_up(ctx.event_log)
    caller = caller_of(request)
    owner = caller.id if caller is not None and not sees_all(caller) else None
    return json_response(await ctx.read_models.list_sessions(query.q or None, owner=owner))


def _metadata(value: dict[str, Any]) -> Metadata | limits.Refusal:
    """The seed's metadata as a command holds it, nested values and all, once it passes the entrance limits."""
    if refusal := limits.check_json(value, "metadata", depth=1):  # where it would sit in the command
        return refusal
    return value


async def create_session(request: Request) -> Response:
    ctx = _ctx(request)
    body = await read_body(request, CreateSessionBody)
    if isinstance(body, Response):
        return body
    metadata = _metadata(body.metadata or {})
    if isinstance(metadata, limits.Refusal):
        return refused(metadata)
    command = CreateSession(
        agent_name=body.agent_name, metadata=metadata, session_id=body.session_id, principal=caller_of(request)
    )
    if refusal := limits.check(command):
        return refused(refusal)
    if (down := await unavailable(ctx)) is not None:
        return down
    try:
        reply = await ctx.bus.request(
            ctx.bus.subjects.sessions_create, command, codec.create_session_replies, timeout=ctx.request_timeout
        )
    except BusError as exc:
        return problem(503, str(exc), "bus_unavailable")
    if isinstance(reply, ErrorReply):
        if reply.code == "internal":  # the worker failed: if the database is why, this raises and answers 503
            await ctx.event_log.last_position()
        return problem(_ERROR_STATUS.get(reply.code, 500), reply.message, reply.code)
    view = await _wait_for_session(ctx, reply.session_id)
    if view is None:
        return problem(504, f"session {reply.session_id} was created but is not readable yet", "projection_lag")
    return json_response(view)


async def _wait_for_session(ctx: GatewayContext, session_id: str, timeout: float = 5.0) -> SessionView | None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        await ctx.read_models.wait_caught_up(ctx.event_log, timeout=timeout)
        view = await ctx.read_models.get_session(session_id)
        if view is not None or asyncio.get_running_loop().time() > deadline:
            return view
        await asyncio.sleep(0.01)


async def get_session(request: Request) -> Response:
    view = await existing_session(request)
    if isinstance(view, Response):
        return view
    usage = await _ctx(request).read_models.usage(view.session_id)
    return json_response(msgspec.structs.replace(view, usage=usage))


async def close_session(request: Request) -> Response:
    ctx = _ctx(request)
    try:
        query = parse_query(request, CloseQuery)
    except msgspec.ValidationError as exc:
        return problem(400, f"invalid query: {exc}", "invalid_query")
    if query.erase:
        erased = await erase(request)
        if isinstance(erased, Response):
            return erased
        events_erased = erased.tombstone.events_erased
        return json_response(
            Closed(status="erased", session_id=erased.session_id, events_erased=events_erased, position=erased.position)
        )
    view = await existing_session(request)
    if isinstance(view, Response):
        return view
    session_id = view.session_id
    if (down := await unavailable(ctx, database=False)) is not None:
        return down
    try:
        await publish_command(ctx.bus, session_id, CloseSession())
    except BusError as exc:
        return problem(503, str(exc), "bus_unavailable")
    deadline = asyncio.get_running_loop().time() + ctx.request_timeout
    while asyncio.get_running_loop().time() < deadline:
        await ctx.read_models.wait_caught_up(ctx.event_log)
        current = await ctx.read_models.get_session(session_id)
        if current is not None and current.status == "closed":
            return json_response(Closed(status="closed", session_id=session_id))
        await asyncio.sleep(0.02)
    return problem(504, "close was accepted but not yet recorded", "timeout")


async def list_messages(request: Request) -> Response:
    ctx = _ctx(request)
    try:
        query = parse_query(request, MessagesQuery)
    except msgspec.ValidationError as exc:
        return problem(400, f"invalid query: {exc}", "invalid_query")
    view = await existing_session(request)
    if isinstance(view, Response):
        return view
    return json_response(await ctx.read_models.list_messages(view.session_id, limit=query.limit, offset=query.offset))


async def get_board(request: Request) -> Response:
    """Return a board rebuilt from its stream (as `agentbus replay board --format json`); `?at=` a past position."""
    ctx = _ctx(request)
    try:
        board_id = validate_id(request.path_params["board_id"], "board")
        at = parse_query(request, AtQuery).at
    except (InvalidId, msgspec.ValidationError) as exc:
        return problem(400, str(exc), "invalid_request")
    view = await load_board(ctx.event_log, board_id, at=at)
    if view is None or not await _may_see_session(request, view.session_id):
        return problem(404, f"Board '{board_id}' not found", "unknown_board")
    return json_response(view)


async def get_team(request: Request) -> Response:
    """Return a team rebuilt from its stream (as `agentbus replay team --format json`); `?at=` a past position."""
    ctx = _ctx(request)
    try:
        team_id = validate_id(request.path_params["team_id"], "team")
        at = parse_query(request, AtQuery).at
    except (InvalidId, msgspec.ValidationError) as exc:
        return problem(400, str(exc), "invalid_request")
    view = await load_team(ctx.event_log, team_id, at=at)
    if view is None or not await _may_see_session(request, view.session_id):
        return problem(404, f"Team '{team_id}' not found", "unknown_team")
    return json_response(view)


async def _may_see_session(request: Request, session_id: str | None) -> bool:
    """Whether the caller may see what belongs to session `session_id` (a board, a team, its events)."""
    caller = caller_of(request)
    if sees_all(caller):
        return True  # all is open to it: no need to read the session
    ctx = _ctx(request)
    await ctx.read_models.wait_caught_up(ctx.event_log)
    view = None if session_id is None else await ctx.read_models.get_session(session_id)
    return view is not None and may_see(caller, view.owner)


async def list_events(request: Request) -> Response:
    ctx = _ctx(request)
    session_id = await _session_id(request)
    if isinstance(session_id, Response):
        return session_id
    try:
        query = parse_query(request, EventsQuery)
    except msgspec.ValidationError as exc:
        return problem(400, f"invalid query: {exc}", "invalid_query")
    if not await _may_see_session(request, session_id):
        return json_response([])  # what a session that does not exist has
    limit = min(query.limit, MAX_EVENTS_PAGE)
    return json_response(await ctx.event_log.read_session(session_id, after=query.after, limit=limit))


routes = [
    ApiRoute(
        "/sessions",
        list_sessions,
        "GET",
        summary="List every session, oldest first (`?q=`: those whose title or a message contains it)",
        query=SessionsQuery,
        responses=answers(list[SessionView], 400),
    ),
    ApiRoute(
        "/sessions",
        create_session,
        "POST",
        summary="Create a session bound to an agent",
        description="404 unknown_agent; 409 session_exists (a `session_id` already taken by another agent).",
        body=CreateSessionBody,
        body_required=False,
        responses=answers(SessionView, 400, 404, 409, 413, 422, 504),
    ),
    ApiRoute(
        "/sessions/{session_id}",
        get_session,
        "GET",
        summary="One session, with its model usage",
        path_params=SESSION_PATH,
        responses=answers(SessionView, 400, 404),
    ),
    ApiRoute(
        "/sessions/{session_id}",
        close_session,
        "DELETE",
        summary="Close a session: later messages are refused (`?erase=true`: erase it)",
        description="`erase=true` (an admin or the service; anyone else gets 404): every event of the session is "
        "replaced by one `session_erased` tombstone, its history and views are gone, its commands and uploads "
        "are removed by a worker.",
        path_params=SESSION_PATH,
        query=CloseQuery,
        responses=answers(Closed, 400, 404, 504),
    ),
    ApiRoute(
        "/sessions/{session_id}/messages",
        list_messages,
        "GET",
        summary="A session's history, oldest first",
        path_params=SESSION_PATH,
        query=MessagesQuery,
        responses=answers(list[MessageView], 400, 404),
    ),
    ApiRoute(
        "/sessions/{session_id}/events",
        list_events,
        "GET",
        summary="A session's raw event log after a position",
        path_params=SESSION_PATH,
        query=EventsQuery,
        responses=answers(list[RecordedEvent], 400, 404),
    ),
    ApiRoute(
        "/boards/{board_id}",
        get_board,
        "GET",
        summary="A board meeting rebuilt from the log",
        path_params={"board_id": Id},
        query=AtQuery,
        responses=answers(BoardView, 400, 404),
    ),
    ApiRoute(
        "/teams/{team_id}",
        get_team,
        "GET",
        summary="A team pipeline rebuilt from the log",
        path_params={"team_id": Id},
        query=AtQuery,
        responses=answers(TeamView, 400, 404),
    ),
]
