"""What a client's session list needs beyond the seed: the agents to pick from, and renaming a session."""

from __future__ import annotations

import asyncio

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from bus import BusError, RequestFailed, publish_command
from projections import SessionView
from schemas import ErrorReply, RenameSession, limits
from schemas.agents import AgentInfo, ListAgents, agent_lists

from .answers import SESSION_PATH, answers, bounded_body, json_response, problem, refused, unavailable
from .context import GatewayContext
from .openapi import ApiRoute
from .rest import existing_session

MAX_TITLE_CHARS = 200
"""The session actor's bound too (`actors.session.state.MAX_TITLE_CHARS`); checked here to answer 422 at once."""


class RenameBody(msgspec.Struct, frozen=True, kw_only=True):
    title: str


async def list_agents(request: Request) -> Response:
    """The configured agents, asked of the workers over the bus (the gateway knows no configuration)."""
    ctx: GatewayContext = request.app.state.ctx
    try:
        reply = await ctx.bus.request(
            ctx.bus.subjects.agents_list, ListAgents(), agent_lists, timeout=ctx.request_timeout
        )
    except RequestFailed as exc:
        return problem(503, f"no worker answered: {exc.reason}", "bus_unavailable")
    if isinstance(reply, ErrorReply):
        return problem(503, reply.message, reply.code)
    return json_response(reply.agents)


async def rename_session(request: Request) -> Response:
    """Set the session's title (`{"title": …}`), recorded as a `session_renamed` event, and return the session."""
    ctx: GatewayContext = request.app.state.ctx
    raw_body = await bounded_body(request)
    if isinstance(raw_body, Response):
        return raw_body
    try:
        body = msgspec.json.decode(raw_body or b"{}", type=RenameBody)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return problem(422, f"invalid body: {exc}", "invalid_body")
    title = " ".join(body.title.split())
    if not title or len(title) > MAX_TITLE_CHARS:
        return problem(422, f"a title needs from 1 to {MAX_TITLE_CHARS} characters", "invalid_title")
    command = RenameSession(title=title)
    if refusal := limits.check(command):
        return refused(refusal)
    view = await existing_session(request)
    if isinstance(view, Response):
        return view
    if (down := await unavailable(ctx, database=False)) is not None:
        return down
    try:
        await publish_command(ctx.bus, view.session_id, command)
    except BusError as exc:
        return problem(503, str(exc), "bus_unavailable")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.request_timeout
    while loop.time() < deadline:
        await ctx.read_models.wait_caught_up(ctx.event_log)
        current = await ctx.read_models.get_session(view.session_id)
        if current is not None and current.title == title:
            return json_response(current)
        await asyncio.sleep(0.02)
    return problem(504, "the rename was accepted but not yet recorded", "timeout")


routes = [
    ApiRoute(
        "/agents",
        list_agents,
        "GET",
        summary="The configured agents, for an agent picker",
        responses=answers(list[AgentInfo]),
    ),
    ApiRoute(
        "/sessions/{session_id}",
        rename_session,
        "PATCH",
        summary="Rename a session (its title; by default its first message)",
        path_params=SESSION_PATH,
        body=RenameBody,
        responses=answers(SessionView, 400, 404, 413, 422, 504),
    ),
]
