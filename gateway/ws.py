"""The chat WebSocket: catch-up from the log, then the live feed, and client commands.

Connection states: authenticate → check the session (unknown or closed: the
seed's error frame, close 1000) → join the session's live feed (`fanout`) →
send `connected` → replay the log after `?after=` → relay live items, dropping
any persisted event whose position was already sent. Every position reaches
the client exactly once and in order, whatever the relay, the catch-up or a
NATS reconnect did (after one, the log is read again from the last position);
an event too big for NATS comes as `event_omitted` and is read from the log.

A client that does not read its frames fast enough is closed with 4008 once
`ws_buffer` live frames wait for it; the close reason names the `after=` to
reconnect with. A client silent for `ws_idle_ping` seconds gets an unprompted
`pong`, and the socket stays open.

A client command is checked against the entrance limits (`schemas.limits`) and
refused with an `error` frame carrying the limit's code; while NATS or the
database is down it is refused at once with `service_unavailable`. A refusal
the session records later comes to the socket that sent the command only.
The socket stays usable either way.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from bus import BusError, publish_command
from bus.tracing import Context, following, root
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
    limits,
    tag_of,
    validate_id,
)
from schemas.texts import Texts, texts_for

from .auth import Caller, Refused, identify, may_see
from .context import GatewayContext
from .fanout import RESYNC, Listener
from .feed import MAX_POSITION, resolve
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

CLOSE_NORMAL = 1000
CLOSE_UNAUTHORIZED = 4001
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_SLOW_CLIENT = 4008
"""The client did not read its frames fast enough; it may reconnect with the `after=` the reason names."""

CLOSE_TIMEOUT = 30.0
"""Seconds a close may wait for a stalled client's buffers to drain; then the socket is abandoned."""

RESUBSCRIBED_TIMEOUT = 2
"""Seconds to wait for NATS to confirm the resubscription after a reconnect, before the log is read again."""


class _Connection:
    """One client socket; all sends go through `send_text` so frames never interleave."""

    def __init__(
        self,
        websocket: WebSocket,
        ctx: GatewayContext,
        session_id: str,
        listener: Listener,
        floor: int,
        texts: Texts,
        caller: Caller,
    ) -> None:
        self.ws = websocket
        self.caller = caller
        self.texts = texts
        self.ctx = ctx
        self.session_id = session_id
        self.listener = listener
        self.last_position = 0
        self.floor = floor
        """Where a read of the log after a NATS reconnect starts, at least: `?after=`, else the log's head at connect."""
        self._send_lock = asyncio.Lock()

    async def send(self, frame: ServerFrame) -> None:
        await self.send_text(encode_frame(frame))

    async def send_text(self, text: str) -> None:
        async with self._send_lock:
            await self.ws.send_text(text)
        self.ctx.metrics.ws_frames_sent_total += 1

    async def deliver(self, item: FeedItem, text: str | None = None, trace: Context | None = None) -> None:
        """Send one feed item, unless its position was sent already; an omitted event is read from the log.

        `trace` is the span that received a live item: the send is its child.
        """
        if isinstance(item, RecordedEvent | EventOmitted) and item.position <= self.last_position:
            return
        with following("ws send", trace):
            await self._deliver(item, text)

    async def _deliver(self, item: FeedItem, text: str | None) -> None:
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
            item, text = found, None
        if isinstance(item, RecordedEvent):
            self.last_position = item.position
        await self.send_text(text if text is not None else encode_frame(render(item, self.texts)))

    async def catch_up(self, after: int) -> None:
        self.last_position = max(self.last_position, after)
        async for recorded in self.ctx.event_log.iter_session(self.session_id, after=self.last_position):
            await self.deliver(recorded)

    async def relay(self, after: int | None) -> None:
        """Replay the log after `after`, then the live feed; return once the listener overflowed.

        `EventLogError` if the log cannot be read.
        """
        if after is not None:
            await self.catch_up(after)
        while (entry := await self.listener.get()) is not None:
            if entry is RESYNC:
                await self._resync()
            else:
                await self.deliver(entry.item, entry.text, entry.trace)

    async def _resync(self) -> None:
        """After a NATS reconnect: once the resubscription is in force, send what the gap hid, from the log."""
        try:
            await self.ctx.bus.flush(timeout=RESUBSCRIBED_TIMEOUT)  # the server has our SUB once it answers
        except BusError:
            pass  # down again: another reconnect, another resync; the log is read now all the same
        await self.catch_up(self.floor)

    async def read(self) -> None:
        """Answer the client's frames until it disconnects; a silence of `ws_idle_ping` s gets a `pong`."""
        while True:
            try:
                async with asyncio.timeout(self.ctx.ws_idle_ping):
                    message = await self.ws.receive()
            except TimeoutError:
                await self.send(ServerFrame(type="pong"))
                continue
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                await self.send(error_frame("binary frames are not supported; send JSON text", "invalid_frame"))
                continue
            await self.on_text(text)

    async def on_text(self, text: str) -> None:
        if len(text.encode()) > self.ctx.max_frame_bytes:
            await self.send(error_frame(f"frame larger than {self.ctx.max_frame_bytes} bytes", "frame_too_large"))
            return
        try:
            frame = client_frames.decode(text)
        except msgspec.DecodeError as exc:
            await self.send(error_frame(f"invalid frame: {exc}", "invalid_frame"))
            return
        except RecursionError:
            await self.send(error_frame("invalid frame: nested too deeply", "invalid_frame"))
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
                        # Every message gets a key here, so that a refusal of it finds this socket.
                        idempotency_key=frame.idempotency_key or uuid.uuid4().hex,
                        principal=self.caller,
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
        # Every command gets a key, claimed before publishing (its refusal may come before the publish's ack):
        # a refusal names the key, so it reaches this socket and no other.
        key = command.idempotency_key or uuid.uuid4().hex
        command = msgspec.structs.replace(command, idempotency_key=key)
        self.listener.claims.sent_key(key)
        try:
            # A trace starts with each command a socket sends: its turn, its answer's frames are its spans.
            with root(f"ws {tag_of(type(command))}") as span:
                if span.is_recording():
                    span.set_attribute("agentbus.session_id", self.session_id)
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
    if not 0 <= after <= MAX_POSITION:
        raise ValueError(f"after must be between 0 and {MAX_POSITION}")
    return after


async def _close(websocket: WebSocket, code: int, reason: str, frame: ServerFrame | None = None) -> None:
    """Send `frame` (if any) and close with `code`; a client whose buffers do not drain is abandoned."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            if frame is not None:
                await websocket.send_text(encode_frame(frame))
            await websocket.close(code=code, reason=reason)
    except (TimeoutError, WebSocketDisconnect, RuntimeError):
        pass  # gone, or not reading: nothing more can reach it


async def _unavailable(websocket: WebSocket, ctx: GatewayContext, exc: EventLogError) -> None:
    """Tell the client the database is down and close with 1013 (try again later)."""
    ctx.health.database_failed(str(exc))
    frame = error_frame(f"the database is unavailable: {exc}", SERVICE_UNAVAILABLE)
    await _close(websocket, CLOSE_TRY_AGAIN_LATER, "database unavailable", frame)


async def chat_socket(websocket: WebSocket) -> None:
    ctx: GatewayContext = websocket.app.state.ctx
    await websocket.accept()
    caller = identify(websocket, ctx.api_key, ctx.jwt)
    if isinstance(caller, Refused):
        await _close(websocket, CLOSE_UNAUTHORIZED, "Invalid api_key", error_frame(caller.message, "unauthorized"))
        return
    try:
        session_id = validate_id(websocket.path_params["session_id"])
        after = _after(websocket)
    except (InvalidId, ValueError) as exc:
        reason = f"invalid request: {exc}"[:120]
        await _close(websocket, CLOSE_POLICY, reason, error_frame(str(exc), "invalid_request"))
        return
    structlog.contextvars.bind_contextvars(session_id=session_id)
    try:
        await ctx.read_models.wait_caught_up(ctx.event_log)
        session = await ctx.read_models.get_session(session_id)
        floor = after if after is not None else await ctx.event_log.last_position()
    except EventLogError as exc:
        await _unavailable(websocket, ctx, exc)
        return
    if session is None or not may_see(caller, session.owner):  # another user's session: as if none existed
        frame = error_frame(f"Session '{session_id}' not found", "unknown_session")
        await _close(websocket, CLOSE_NORMAL, "Session not found", frame)
        return
    if session.status == "closed":
        await _close(websocket, CLOSE_NORMAL, "Session closed", error_frame("Session is closed", "session_closed"))
        return
    if not ctx.bus.connected:
        frame = error_frame("the live feed is unavailable: NATS is not connected", SERVICE_UNAVAILABLE)
        await _close(websocket, CLOSE_TRY_AGAIN_LATER, "NATS unavailable", frame)
        return
    locale = session.metadata.get("locale")
    texts = texts_for(locale if isinstance(locale, str) else ctx.locale)
    await _serve(websocket, ctx, session_id, after, floor, texts, caller)


async def _serve(
    websocket: WebSocket,
    ctx: GatewayContext,
    session_id: str,
    after: int | None,
    floor: int,
    texts: Texts,
    caller: Caller,
) -> None:
    """Relay the session to the socket and answer its frames, until either side ends."""
    listener = Listener(ctx.ws_buffer)
    try:
        # Joined before the log is read, so nothing committed meanwhile is missed.
        await ctx.fanout.join(ctx.bus, ctx.event_log, session_id, listener, texts)
    except (BusError, TimeoutError, OSError) as exc:
        frame = error_frame(f"the live feed is unavailable: {exc or type(exc).__name__}", SERVICE_UNAVAILABLE)
        await _close(websocket, CLOSE_TRY_AGAIN_LATER, "NATS unavailable", frame)
        return
    conn = _Connection(websocket, ctx, session_id, listener, floor, texts, caller)
    ctx.metrics.ws_accepted_total += 1
    ctx.metrics.ws_open += 1
    relaying = reading = dropped = None
    try:
        await conn.send(ServerFrame(type="connected", session_id=session_id, position=None))
        relaying = asyncio.create_task(conn.relay(after), name=f"ws-relay-{session_id}")
        reading = asyncio.create_task(conn.read(), name=f"ws-read-{session_id}")
        dropped = asyncio.create_task(listener.dropped.wait(), name=f"ws-dropped-{session_id}")
        await asyncio.wait([relaying, reading, dropped], return_when=asyncio.FIRST_COMPLETED)
        await _end([relaying, reading, dropped])
        failure = _failure(relaying) or _failure(reading)
        if listener.overflowed:
            ctx.metrics.ws_closed_slow_total += 1
            resume = max(conn.last_position, conn.floor)
            logger.info("ws_slow_client_closed", buffered=listener.limit, position=resume)
            reason = f"too slow: over {listener.limit} frames unsent; reconnect with after={resume}"
            await _close(websocket, CLOSE_SLOW_CLIENT, reason)
        elif isinstance(failure, EventLogError):
            await _unavailable(websocket, ctx, failure)  # the catch-up could not read the log
        elif failure is not None:
            logger.error("ws_failed", error=repr(failure), exc_info=failure)
            await _close(websocket, CLOSE_INTERNAL, "internal error", error_frame(f"internal error: {failure!r}"))
    except WebSocketDisconnect:
        pass  # gone before `connected` reached it
    finally:
        ctx.metrics.ws_open -= 1
        await _end([task for task in (relaying, reading, dropped) if task is not None])
        await ctx.fanout.leave(session_id, listener)
        if websocket.client_state == websocket.application_state == WebSocketState.CONNECTED:
            await _close(websocket, CLOSE_NORMAL, "")


async def _end(tasks: Sequence[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)


def _failure(task: asyncio.Task[Any] | None) -> BaseException | None:
    """The error `task` ended with; a client that went away is no failure."""
    if task is None or task.cancelled() or task.exception() is None:
        return None
    exc = task.exception()
    return None if isinstance(exc, WebSocketDisconnect) else exc
