"""The events request: answer `<prefix>.session.<sid>.events` from the event log, so a service catches up over the bus.

A service that was away asks for the session's events after the last position
it saw, pages while `more` is true, and goes on with the live subject: with
the log's positions it sees every event once, and it needs no HTTP for it.
Every worker serves the wildcard subject in one queue group, so any of them
answers whichever session is asked for (reading needs no lease).

Requests are answered one at a time, in the order they came: nats-py holds
the ones waiting in the subscription's bounded queue, and each read of the
log has a deadline, so an unreachable database is answered, not waited on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec
import structlog

from bus import Bus
from projections import DatabaseError, EventLog, EventLogError
from schemas import DecodeError, ErrorReply, InvalidId, RecordedEvent, encode, session_stream, tag_of, validate_id
from schemas.frames import EventOmitted
from schemas.history import MAX_LIMIT, EventsPage, EventsReply, ReadEvents, read_events

logger = structlog.get_logger("agentbus.history")

QUEUE = "history"
"""The queue group of the workers answering events requests."""

READ_TIMEOUT = 5.0
"""Seconds one request may spend reading the log before it is answered `unavailable`."""

PAGE_OVERHEAD = 1024
"""Bytes kept for a page's own fields around its items, within the server's `max_payload`."""

_encoder = msgspec.json.Encoder()


class _Request(Protocol):
    """What serving needs of a NATS message (nats-py's `Msg`), so nothing here speaks nats-py itself."""

    subject: str
    reply: str
    data: bytes

    async def respond(self, data: bytes) -> None: ...


async def read_page(event_log: EventLog, session_id: str, request: ReadEvents, *, max_bytes: int) -> EventsReply:
    """Return the session's page of events after `request.after`, whose items take at most `max_bytes` as JSON.

    The page always holds its first item (an event that alone outgrows
    `max_bytes` becomes an `event_omitted` notice), so paging always moves on.
    A session the log knows nothing of is `unknown_session`.
    """
    limit = min(request.limit, MAX_LIMIT)
    # One more than asked for: whether it comes back says if there is more.
    found = await event_log.read_session(session_id, after=request.after, limit=limit + 1)
    if not found and await event_log.stream_version(session_stream(session_id)) == 0:
        return ErrorReply(code="unknown_session", message=f"session {session_id!r} not found")
    items: list[RecordedEvent | EventOmitted] = []
    size = 0
    for recorded in found[:limit]:
        item = _fitting(recorded, max_bytes)
        item_size = len(_encoder.encode(item)) + 1  # the comma between items
        if items and size + item_size > max_bytes:
            break
        items.append(item)
        size += item_size
    return EventsPage(
        session_id=session_id,
        events=items,
        next_after=items[-1].position if items else request.after,
        more=len(items) < len(found),
    )


def _fitting(recorded: RecordedEvent, max_bytes: int) -> RecordedEvent | EventOmitted:
    """The event itself, or the notice that stands for it when it can never travel in a reply."""
    size = len(_encoder.encode(recorded))
    if size <= max_bytes:
        return recorded
    return EventOmitted(
        position=recorded.position,
        stream=recorded.stream,
        event_type=tag_of(type(recorded.event)),
        reason=f"the event is {size} bytes as JSON, more than a reply of the bus carries ({max_bytes})",
    )


class HistoryServer:
    """Answers every session's events requests under the bus's prefix, one queue-group member among the workers."""

    def __init__(self, bus: Bus, event_log: EventLog, *, read_timeout: float = READ_TIMEOUT) -> None:
        self._bus = bus
        self._event_log = event_log
        self._read_timeout = read_timeout
        self._unsubscribe: Callable[[], Awaitable[None]] | None = None

    async def start(self) -> None:
        """Subscribe in the queue group; requests are answered from the time this returns."""
        if self._unsubscribe is not None:
            return
        # `Bus.serve` hands its handler the decoded request alone; the session is named by the subject.
        subscription = await self._bus.nc.subscribe(
            self._bus.subjects.all_session_events, queue=QUEUE, cb=self._on_request
        )
        await self._bus.flush()
        self._unsubscribe = subscription.unsubscribe

    async def stop(self) -> None:
        """Stop answering; a request in flight gets no reply (its sender's deadline ends it)."""
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is None:
            return
        try:
            await unsubscribe()
        except Exception as exc:  # closed or reconnecting: the server forgets the subscription with the connection
            logger.info("history_unsubscribe_failed", error=str(exc) or type(exc).__name__)

    async def _on_request(self, msg: _Request) -> None:
        if not msg.reply:
            return  # published, not requested: there is no one to answer
        reply = await self.answer(msg.subject, msg.data)
        # A failed respond (the connection dropped) goes to the bus's error callback; the sender asks again.
        await msg.respond(encode(reply))

    async def answer(self, subject: str, data: bytes) -> EventsReply:
        """Return the reply to one events request on `subject`; bad input is an `ErrorReply`, never a raise."""
        try:
            # The subject is `<prefix>.session.<sid>.events`: the session is the next-to-last token.
            session_id = validate_id(subject.split(".")[-2])
        except (InvalidId, IndexError) as exc:
            return ErrorReply(code="invalid_session_id", message=str(exc))
        try:
            request = read_events.decode(data) if data.strip() else ReadEvents()
        except DecodeError as exc:
            return exc.as_reply()
        tokens = structlog.contextvars.bind_contextvars(session_id=session_id)
        max_bytes = self._bus.nc.max_payload - PAGE_OVERHEAD
        try:
            async with asyncio.timeout(self._read_timeout):
                return await read_page(self._event_log, session_id, request, max_bytes=max_bytes)
        except TimeoutError:
            return ErrorReply(code="unavailable", message=f"the event log did not answer within {self._read_timeout}s")
        except DatabaseError as exc:
            return ErrorReply(code="unavailable", message=str(exc))
        except EventLogError as exc:
            logger.warning("history_read_failed", error=str(exc))
            return ErrorReply(code="internal", message=str(exc))
        finally:
            # Every request is answered in the subscription's one task: its context must not leak to the next.
            structlog.contextvars.reset_contextvars(**tokens)
