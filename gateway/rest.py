"""REST under /api/v1/chat: sessions, their messages, and the raw event log.

A database failure in any handler is answered by the app's one handler for
`EventLogError` (503 `service_unavailable`), not here.
"""

from __future__ import annotations

import asyncio

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bus import BusError, publish_command
from projections import SessionView
from projections.replay import load_board, load_team
from schemas import CloseSession, CreateSession, ErrorReply, InvalidId, Metadata, codec, limits, validate_id

from .context import GatewayContext
from .health import SERVICE_UNAVAILABLE

_encoder = msgspec.json.Encoder()


class CreateSessionBody(msgspec.Struct, frozen=True, kw_only=True):
    agent_name: str = "assistant"
    metadata: Metadata | None = None
    session_id: str | None = None


def json_response(value: object, status: int = 200) -> Response:
    return Response(_encoder.encode(value), status_code=status, media_type="application/json")


class Problem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An error body: `detail` as the seed's HTTPException had it, plus a stable `code`."""

    detail: str
    code: str | None = None


class Closed(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    session_id: str


def problem(status: int, detail: str, code: str | None = None) -> Response:
    return json_response(Problem(detail=detail, code=code), status)


_REFUSAL_STATUS = {limits.TOO_LARGE: 413, limits.INVALID_TEXT: 422, limits.TOO_DEEP: 422}
_ERROR_STATUS = {
    "unknown_agent": 404,
    "session_exists": 409,
    "invalid_session_id": 400,
    "invalid_message": 400,
    **_REFUSAL_STATUS,
}


def refused(refusal: limits.Refusal) -> Response:
    """The answer to a command that breaks an entrance limit: 413 when too large, else 422."""
    return problem(_REFUSAL_STATUS.get(refusal.code, 422), refusal.message, refusal.code)


async def bounded_body(request: Request, limit: int = limits.MAX_BODY_BYTES) -> bytes | Response:
    """The request's body, read no further than `limit` bytes; past it, the 413 to answer."""
    too_large = problem(413, f"the body is larger than {limit} bytes", limits.TOO_LARGE)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def unavailable(ctx: GatewayContext, *, database: bool = True) -> Response | None:
    """The 503 to answer while NATS or the database is down (see `Health`), else None.

    `database=False` for a handler that has just read the database (its failure would have raised).
    """
    reason = await ctx.health.unavailable(ctx.bus, ctx.event_log, database=database)
    return None if reason is None else problem(503, reason, SERVICE_UNAVAILABLE)


def _ctx(request: Request) -> GatewayContext:
    return request.app.state.ctx


async def _session_id(request: Request) -> str | Response:
    try:
        return validate_id(request.path_params["session_id"])
    except InvalidId as exc:
        return problem(400, str(exc), "invalid_session_id")


async def existing_session(request: Request) -> SessionView | Response:
    """The session named in the path, read after the projector caught up; else the 400/404 to answer."""
    ctx = _ctx(request)
    session_id = await _session_id(request)
    if isinstance(session_id, Response):
        return session_id
    await ctx.read_models.wait_caught_up(ctx.event_log)
    view = await ctx.read_models.get_session(session_id)
    if view is None:
        return problem(404, f"Session '{session_id}' not found", "unknown_session")
    return view


async def list_sessions(request: Request) -> Response:
    ctx = _ctx(request)
    await ctx.read_models.wait_caught_up(ctx.event_log)
    return json_response(await ctx.read_models.list_sessions())


async def create_session(request: Request) -> Response:
    ctx = _ctx(request)
    raw_body = await bounded_body(request)
    if isinstance(raw_body, Response):
        return raw_body
    try:
        body = msgspec.json.decode(raw_body or b"{}", type=CreateSessionBody)
    except msgspec.DecodeError as exc:
        return problem(422, f"invalid body: {exc}", "invalid_body")
    command = CreateSession(agent_name=body.agent_name, metadata=body.metadata or {}, session_id=body.session_id)
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


def _int_param(request: Request, name: str, default: int | None, minimum: int = 0) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    number = int(value)  # ValueError is answered with 400 by the caller
    if number < minimum:
        raise ValueError(f"{name} must be >= {minimum}")
    return number


async def list_messages(request: Request) -> Response:
    ctx = _ctx(request)
    try:
        limit = _int_param(request, "limit", None, minimum=1)
        offset = _int_param(request, "offset", 0) or 0
    except ValueError as exc:
        return problem(400, f"invalid query: {exc}", "invalid_query")
    view = await existing_session(request)
    if isinstance(view, Response):
        return view
    return json_response(await ctx.read_models.list_messages(view.session_id, limit=limit, offset=offset))


async def get_board(request: Request) -> Response:
    """Return a board rebuilt from its stream (as `agentbus replay board --format json`); `?at=` a past position."""
    ctx = _ctx(request)
    try:
        board_id = validate_id(request.path_params["board_id"], "board")
        at = _int_param(request, "at", None)
    except (InvalidId, ValueError) as exc:
        return problem(400, str(exc), "invalid_request")
    view = await load_board(ctx.event_log, board_id, at=at)
    if view is None:
        return problem(404, f"Board '{board_id}' not found", "unknown_board")
    return json_response(view)


async def get_team(request: Request) -> Response:
    """Return a team rebuilt from its stream (as `agentbus replay team --format json`); `?at=` a past position."""
    ctx = _ctx(request)
    try:
        team_id = validate_id(request.path_params["team_id"], "team")
        at = _int_param(request, "at", None)
    except (InvalidId, ValueError) as exc:
        return problem(400, str(exc), "invalid_request")
    view = await load_team(ctx.event_log, team_id, at=at)
    if view is None:
        return problem(404, f"Team '{team_id}' not found", "unknown_team")
    return json_response(view)


async def list_events(request: Request) -> Response:
    ctx = _ctx(request)
    session_id = await _session_id(request)
    if isinstance(session_id, Response):
        return session_id
    try:
        after = _int_param(request, "after", 0) or 0
        limit = min(_int_param(request, "limit", 1000, minimum=1) or 1000, 10_000)
    except ValueError as exc:
        return problem(400, f"invalid query: {exc}", "invalid_query")
    return json_response(await ctx.event_log.read_session(session_id, after=after, limit=limit))


routes = [
    Route("/sessions", list_sessions, methods=["GET"]),
    Route("/sessions", create_session, methods=["POST"]),
    Route("/sessions/{session_id}", get_session, methods=["GET"]),
    Route("/sessions/{session_id}", close_session, methods=["DELETE"]),
    Route("/sessions/{session_id}/messages", list_messages, methods=["GET"]),
    Route("/sessions/{session_id}/events", list_events, methods=["GET"]),
    Route("/boards/{board_id}", get_board, methods=["GET"]),
    Route("/teams/{team_id}", get_team, methods=["GET"]),
]
