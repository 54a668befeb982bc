"""The Starlette application: REST, the chat WebSocket, health, and the web page."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Mount, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from bus import BusError
from bus.commands import command_backlog
from projections import DatabaseError, EventLogClosedError, EventLogError

from .a2a import A2aAgents
from .admin import routes as admin_routes
from .answers import Problem, http_error, problem
from .auth import Refused, identify
from .context import GatewayContext
from .directory import routes as directory_routes
from .health import SERVICE_UNAVAILABLE
from .jsonrpc import JSON_RPC_ANSWER, JsonRpcMessage
from .mcp import AgentbusTools, McpEndpoint
from .metrics import metrics, relay_lag
from .openapi import ApiRoute, Content
from .openapi import routes as openapi_routes
from .rest import routes as rest_routes
from .send import route as send_route
from .uploads import Upload, download, upload
from .ws import chat_socket

_STATIC = Path(__file__).parent / "static"
_OPEN_PATHS = frozenset({"/", "/healthz", "/readyz", "/metrics"})
# The page's scripts, styles and vendored libraries: public, as the page itself is.
_OPEN_PREFIX = "/static/"


class AuthMiddleware:
    """Find who a REST call comes from (`auth.caller_of`), refusing it without a valid credential.

    The socket identifies its caller itself, to close with 4001.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if scope["type"] == "http" and path not in _OPEN_PATHS and not path.startswith(_OPEN_PREFIX):
            request = Request(scope)
            ctx: GatewayContext = request.app.state.ctx
            caller = identify(request, ctx.api_key, ctx.jwt)
            if isinstance(caller, Refused):
                await problem(401, caller.message, "unauthorized")(scope, receive, send)
                return
            scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    """Ready: NATS connected, the command stream readable, the log readable, the relay keeping up."""
    ctx: GatewayContext = request.app.state.ctx
    if not ctx.bus.nc.is_connected:
        return problem(503, "NATS is not connected", "nats_down")
    try:
        backlog = await command_backlog(ctx.bus)
    except BusError as exc:
        return problem(503, str(exc), "command_stream_down")
    try:
        _, lag = await relay_lag(ctx, backlog)
    except EventLogError as exc:
        return problem(503, f"event log unavailable: {exc}", "database_down")
    lagging_for = ctx.health.lagging_for(lag > ctx.relay_lag_limit)
    if lag > ctx.relay_lag_limit and lagging_for >= ctx.relay_lag_grace:
        detail = f"the relay trails the log by {lag} events (more than {ctx.relay_lag_limit}) for {lagging_for:.0f} s"
        return problem(503, detail, "relay_lagging")
    return PlainTextResponse("ready")


async def event_log_failed(request: Request, exc: Exception) -> Response:
    """Answer a handler's `EventLogError`: 503 while the database is down, 500 for anything else."""
    ctx: GatewayContext = request.app.state.ctx
    if isinstance(exc, DatabaseError | EventLogClosedError):
        ctx.health.database_failed(str(exc))
        return problem(503, f"the database is unavailable: {exc}", SERVICE_UNAVAILABLE)
    return problem(500, str(exc), "event_log_error")


async def index(request: Request) -> Response:
    return FileResponse(_STATIC / "index.html")


_BINARY = {"type": "string", "format": "binary"}
_UPLOAD_FORM = {"type": "object", "properties": {"file": _BINARY}, "required": ["file"]}


def create_app(ctx: GatewayContext) -> Starlette:
    """Build the gateway around already-connected handles (owned by the caller).

    Its MCP endpoint serves while the owner holds `app.state.mcp.running()`.
    """
    tools = AgentbusTools()
    mcp = McpEndpoint(tools)
    a2a = A2aAgents(ctx)
    app = Starlette(
        routes=[
            ApiRoute("/", index, "GET", summary="The chat page", responses={200: Content("text/html")}),
            ApiRoute("/healthz", healthz, "GET", summary="Liveness", responses={200: Content("text/plain")}),
            ApiRoute(
                "/readyz",
                readyz,
                "GET",
                summary="Readiness: NATS, the command stream and the log readable, the relay keeping up",
                responses={200: Content("text/plain"), 503: Problem},
            ),
            ApiRoute("/metrics", metrics, "GET", summary="Prometheus metrics", responses={200: Content("text/plain")}),
            Mount("/static", StaticFiles(directory=_STATIC), name="static"),
            *openapi_routes,
            ApiRoute(
                "/mcp",
                mcp,
                "POST",
                summary="Model Context Protocol (streamable HTTP, stateless): chat with agents, hold boards",
                body=JsonRpcMessage,
                responses={
                    200: Content("application/json", schema=JSON_RPC_ANSWER),
                    202: None,  # a notification, accepted
                    400: Content("application/json", schema=JSON_RPC_ANSWER),
                    401: Problem,
                    406: Content("application/json", schema=JSON_RPC_ANSWER),
                },
            ),
            *a2a.routes,
            Mount("/api/v1/admin", routes=admin_routes),
            Mount(
                "/api/v1/chat",
                routes=[
                    *rest_routes,
                    *directory_routes,
                    send_route,
                    ApiRoute(
                        "/upload",
                        upload,
                        "POST",
                        summary="Store a file (multipart field `file`, at most 10 MB) for messages and tools to use",
                        body=Content("multipart/form-data", schema=_UPLOAD_FORM),
                        responses={200: Upload, **dict.fromkeys((400, 401, 408, 413, 415, 422, 503), Problem)},
                    ),
                    ApiRoute(
                        "/uploads/{name:path}",
                        download,
                        "GET",
                        summary="An upload, as an attachment named after its stored name",
                        responses={
                            200: Content("application/octet-stream", schema=_BINARY),
                            401: Problem,
                            404: Problem,
                        },
                    ),
                    WebSocketRoute("/ws/{session_id}", chat_socket),
                ],
            ),
        ],
        middleware=[Middleware(AuthMiddleware)],
        exception_handlers={EventLogError: event_log_failed, HTTPException: http_error},
    )
    app.state.ctx = ctx
    app.state.mcp = mcp
    tools.bind(app)
    a2a.bind(app)
    return app
