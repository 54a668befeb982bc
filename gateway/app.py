"""The Starlette application: REST, the chat WebSocket, health, and the web page."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from projections import EventLogError

from .auth import authorized
from .context import GatewayContext
from .metrics import metrics
from .rest import problem
from .rest import routes as rest_routes
from .send import send_message
from .ws import chat_socket

_STATIC = Path(__file__).parent / "static"
_OPEN_PATHS = frozenset({"/", "/healthz", "/readyz", "/metrics"})


class ApiKeyMiddleware:
    """Refuse REST calls without the configured API key (the socket checks it itself, to close with 4001)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in _OPEN_PATHS:
            request = Request(scope)
            ctx: GatewayContext = request.app.state.ctx
            if not authorized(request, ctx.api_key):
                await problem(401, "invalid or missing API key", "unauthorized")(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    ctx: GatewayContext = request.app.state.ctx
    if not ctx.bus.nc.is_connected:
        return problem(503, "NATS is not connected", "nats_down")
    try:
        await ctx.event_log.last_position()
    except EventLogError as exc:
        return problem(503, f"event log unavailable: {exc}", "database_down")
    return PlainTextResponse("ready")


async def index(request: Request) -> Response:
    return FileResponse(_STATIC / "index.html")


def create_app(ctx: GatewayContext) -> Starlette:
    """Build the gateway around already-connected handles (owned by the caller)."""
    app = Starlette(
        routes=[
            Route("/", index),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Mount(
                "/api/v1/chat",
                routes=[
                    *rest_routes,
                    Route("/sessions/{session_id}/messages", send_message, methods=["POST"]),
                    WebSocketRoute("/ws/{session_id}", chat_socket),
                ],
            ),
        ],
        middleware=[Middleware(ApiKeyMiddleware)],
    )
    app.state.ctx = ctx
    return app
