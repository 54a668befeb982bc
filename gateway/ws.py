"""The chat WebSocket: catch-up from the log, then the live feed, and client commands.

Connection states: authenticate → check the session → subscribe live → send
`connected` → replay the log after `?after=` → relay live items, dropping any
persisted event whose position was already sent. Every position reaches the
client exactly once and in order, whatever the relay or the catch-up did; an
event too big for NATS comes as `event_omitted` and is read from the log.

A client command is checked against the entrance limits (`schemas.limits`) and
refused with an `error` frame carrying the limit's code; while NATS or the
database is down it is refused at once with `service_unavailable`. The socket
stays usable either way.
"""

from __future__ import annotations

import asyncio

import msgspec
import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from bus import BusError, TypedSubscription, publish_command
from projections import EventLogError
from schemas import (
    Cancel,
    ConfirmationReply,
    EventOmitted,
    FeedItem,
    HumanReply,
    InvalidId,
    RecordedEvent,
    SendMessage,
    codec,
    limits,
    validate_id,
)

from .auth import authorized
from .context import GatewayContext
from .feed import resolve
from .health import SERVICE_UNAVAILABLE
from .protocol import (
    CancelFrame,
    ConfirmationReplyFrame,
    MessageFrame,
    Ping,
    ReplyFrame,
    ServerFrame,
    client_frames,
    encode_frame,
    error_frame,
)
from .render import render

logger = structlog.get_logger("agentbus.gateway")

CLOSE_UNAUTHORIZED = 4001
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN_LATER = 1013


class _Connection:
    """One client socket; all sends go through `send` so frames never interleave."""

    def __init__(self, websocket: WebSocket, ctx: GatewayContext, session_id: str) -> None:
        self.ws = websocket
        self.ctx = ctx
        self.session_id = session_id
        self.last_position = 0
        self._send_lock = asyncio.Lock()

    async def send(self, frame: ServerFrame) -> None:
        async with self._send_lock:
            await self.ws.send_text(encode_frame(frame))
        self.ctx.metrics.ws_frames_sent_total += 1

    async def deliver(self, item: FeedItem) -> None:
        """Send one feed item, unless its position was sent already; an omitted event is read from the log."""
        if isinstance(item, RecordedEvent | EventOmitted) and item.position <= self.last_position:
            return
        if isinstance(item, EventOmitted):
            try:
                found = await resolve(self.ctx.event_log, self.session_id, item)
            except EventLogError as exc:
                self.ctx.health.database_failed(str(exc))
                message = (
                    f"event {item.position} ({item.event_type}) is too big for the live feed and cannot be read"
                    f" from the log now ({exc}); reconnect with after={self.last_position} to get it"
                )
                await self.send(error_frame(message, SERVICE_UNAVAILABLE))
                return
            if found is None:
                return
            item = found
        if isinstance(item, RecordedEvent):
            self.last_position = item.position
        await self.send(render(item))

    async def catch_up(self, after: int) -> None:
        self.last_position = after
        async for recorded in self.ctx.event_log.iter_session(self.session_id, after=after):
            await self.deliver(recorded)

    async def pump(self, live: TypedSubscription[FeedItem]) -> None:
        # Items that arrived during catch-up wait in the subscription's buffer.
        async for item in live:
            await self.deliver(item)

    async def on_text(self, text: str) -> None:
        if len(text.encode()) > self.ctx.max_frame_bytes:
            await self.send(error_frame(f"frame larger than {self.ctx.max_frame_bytes} bytes", "frame_too_large"))
            return
        try:
            frame = client_frames.decode(text)
        except msgspec.DecodeError as exc:
            await self.send(error_frame(f"invalid frame: {exc}", "invalid_frame"))
            return
        match frame:
            case Ping():
                await self.send(ServerFrame(type="pong"))
            case MessageFrame():
                await self._command(
                    SendMessage(
                        content=frame.content,
                        model=frame.model,
                        execution_mode=frame.execution_mode,
                        idempotency_key=frame.idempotency_key,
                    )
                )
            case CancelFrame(turn_id=turn_id):
                await self._command(Cancel(turn_id=turn_id))
            case ReplyFrame(request_id=request_id, content=content):
                await self._command(HumanReply(request_id=request_id, content=content))
            case ConfirmationReplyFrame(confirmation_id=confirmation_id, approved=approved):
                await self._command(ConfirmationReply(confirmation_id=confirmation_id, approved=approved))

    async def _command(self, command: SendMessage | Cancel | HumanReply | ConfirmationReply) -> None:
        if refusal := limits.check(command):
            await self.send(error_frame(refusal.message, refusal.code))
            return
        if reason := await self.ctx.health.unavailable(self.ctx.bus, self.ctx.event_log):
            self.ctx.metrics.commands_failed_total += 1
            await self.send(error_frame(f"command not accepted: {reason}", SERVICE_UNAVAILABLE))
            return
        try:
            await publish_command(self.ctx.bus, self.session_id, command)
            self.ctx.metrics.commands_published_total += 1
        except BusError as exc:
            self.ctx.metrics.commands_failed_total += 1
            await self.send(error_frame(f"command not accepted: {exc}", "bus_unavailable"))


def _after(websocket: WebSocket) -> int | None:
    value = websocket.query_params.get("after")
    if value is None:
        return None
    after = int(value)
    if after < 0:
        raise ValueError("after must be >= 0")
    return after


async def _unavailable(websocket: WebSocket, ctx: GatewayContext, exc: EventLogError) -> None:
    """Tell the client the database is down and close with 1013 (try again later)."""
    ctx.health.database_failed(str(exc))
    await websocket.send_text(encode_frame(error_frame(f"the database is unavailable: {exc}", SERVICE_UNAVAILABLE)))
    await websocket.close(code=CLOSE_TRY_AGAIN_LATER, reason="database unavailable")


async def chat_socket(websocket: WebSocket) -> None:
    ctx: GatewayContext = websocket.app.state.ctx
    await websocket.accept()
    if not authorized(websocket, ctx.api_key):
        await websocket.send_text(encode_frame(error_frame("Invalid api_key", "unauthorized")))
        await websocket.close(code=CLOSE_UNAUTHORIZED, reason="Invalid api_key")
        return
    try:
        session_id = validate_id(websocket.path_params["session_id"])
        after = _after(websocket)
    except (InvalidId, ValueError) as exc:
        await websocket.send_text(encode_frame(error_frame(str(exc), "invalid_request")))
        await websocket.close(code=CLOSE_POLICY, reason="invalid request")
        return
    structlog.contextvars.bind_contextvars(session_id=session_id)
    try:
        await ctx.read_models.wait_caught_up(ctx.event_log)
        session = await ctx.read_models.get_session(session_id)
    except EventLogError as exc:
        await _unavailable(websocket, ctx, exc)
        return
    if session is None:
        await websocket.send_text(encode_frame(error_frame(f"Session '{session_id}' not found", "unknown_session")))
        await websocket.close(code=1000, reason="Session not found")
        return

    conn = _Connection(websocket, ctx, session_id)
    # Subscribe before reading the log, so nothing committed meanwhile is missed.
    live = await ctx.bus.subscribe(ctx.bus.subjects.session_evt(session_id), codec.feed)
    pump: asyncio.Task[None] | None = None
    ctx.metrics.ws_accepted_total += 1
    ctx.metrics.ws_open += 1
    try:
        await conn.send(ServerFrame(type="connected", session_id=session_id, position=None))
        if after is not None:
            await conn.catch_up(after)
        pump = asyncio.create_task(conn.pump(live), name=f"ws-pump-{session_id}")
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            text = message.get("text")
            if text is None:
                await conn.send(error_frame("binary frames are not supported; send JSON text", "invalid_frame"))
                continue
            await conn.on_text(text)
    except WebSocketDisconnect:
        pass
    except EventLogError as exc:  # the catch-up could not read the log
        await _unavailable(websocket, ctx, exc)
    finally:
        ctx.metrics.ws_open -= 1
        if pump is not None:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
        await live.close()
        if websocket.client_state == WebSocketState.CONNECTED:
            await websocket.close()
