"""The event log: append with optimistic concurrency, read by stream, session or position, follow."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial
from typing import Any

import msgspec
import structlog
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.envelope import RecordedEvent

from ._append_request import AppendRequest, NewEvent
from ._appender import GroupAppender
from ._db import driver_errors
from ._rows import decode_row, select_events
from ._tracing import append_span, traced
from ._wakeup import Wakeup
from .database import asyncpg_dsn
from .errors import DatabaseError, DuplicateEventError, EventLogError
from .skipped import SkippedEvent, Skips
from .tables import events

logger = structlog.get_logger(__name__)

_MIN_RETRY = 0.5  # how often an unreachable database is tried again, whatever the poll interval


_Query = Callable[[int, int | None], Select[Any]]
"""The rows after a cursor, at most a limit of them (None: every one)."""
_Cursor = Callable[[RecordedEvent | SkippedEvent], int]
"""Where a read goes on after a row."""


def _position(item: RecordedEvent | SkippedEvent) -> int:
    return item.position


def _version(item: RecordedEvent | SkippedEvent) -> int:
    return item.version


def _stream_query(stream: str, after_version: int, limit: int | None) -> Select[Any]:
    return (
        select_events()
        .where(events.c.stream == stream, events.c.version > after_version)
        .order_by(events.c.version)
        .limit(limit)
    )


def _session_query(session_id: str, after: int, limit: int | None) -> Select[Any]:
    return (
        select_events()
        .where(events.c.session_id == session_id, events.c.position > after)
        .order_by(events.c.position)
        .limit(limit)
    )


def _all_query(after: int, limit: int | None) -> Select[Any]:
    return select_events().where(events.c.position > after).order_by(events.c.position).limit(limit)


class EventLog:
    """The append-only log in PostgreSQL; one instance per process, shared by its actors.

    `engine` must come from `database.create_engine` (it moves jsonb as text).
    Appends of concurrent callers are committed together by one background
    task; call `close` to let it finish. Reads skip the events this code
    cannot read (see `projections.skipped`); only `replay_stream` and `follow`
    hand them over, as `SkippedEvent`s.
    """

    def __init__(self, engine: AsyncEngine, *, page_size: int = 500) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._engine = engine
        self._page_size = page_size
        self._dsn = asyncpg_dsn(engine.url)
        self._appender = GroupAppender(self._dsn)
        self.skipped = Skips()
        """The events this process's reads skipped (see `projections.skipped`)."""

    @property
    def engine(self) -> AsyncEngine:
        """The engine the log runs on (stores beside it, such as the quota store, share it)."""
        return self._engine

    @property
    def page_size(self) -> int:
        """How many events one read of the iterators and of `follow` fetches."""
        return self._page_size

    async def append(
        self, stream: str, events: Sequence[NewEvent], expected_version: int | None
    ) -> list[RecordedEvent]:
        """Append `events` to `stream` atomically and return them as recorded.

        `expected_version` is the stream's current version (0: the stream must
        be empty; None: no check); otherwise `ConcurrencyError`. If every event
        id is already recorded on this stream the call is a retry: it returns
        the recorded events and writes nothing. Some ids recorded, or recorded
        on another stream, raises `DuplicateEventError`. An empty `events` returns [].
        """
        if not events:
            return []
        batch = tuple(_canonical_id(new) for new in events)
        repeated = [event_id for event_id, count in Counter(new.event_id for new in batch).items() if count > 1]
        if repeated:
            raise DuplicateEventError(stream, repeated)
        future: asyncio.Future[list[RecordedEvent]] = asyncio.get_running_loop().create_future()
        if not traced():
            return await self._appender.submit(AppendRequest(stream, batch, expected_version, future))
        with append_span(stream, batch) as batch_traced:
            return await self._appender.submit(AppendRequest(stream, batch_traced, expected_version, future))

    async def read_stream(self, stream: str, after_version: int = 0, limit: int | None = None) -> list[RecordedEvent]:
        """Return the events of `stream` with a version above `after_version`, oldest first."""
        return await self._known(partial(_stream_query, stream), after_version, limit, "read stream", _version)

    async def read_session(self, session_id: str, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Return the events of every stream of a session with a position above `after`, in order."""
        return await self._known(partial(_session_query, session_id), after, limit, "read session")

    async def read_all(self, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Return the events with a position above `after`, in position order."""
        return await self._known(_all_query, after, limit, "read all")

    async def last_position(self) -> int:
        """Return the largest committed position (0 for an empty log)."""
        return await self._scalar(select(func.coalesce(func.max(events.c.position), 0)), "read last position")

    async def stream_version(self, stream: str) -> int:
        """Return the version of `stream` (0 if it has no events)."""
        query = select(func.coalesce(func.max(events.c.version), 0)).where(events.c.stream == stream)
        return await self._scalar(query, "read stream version")

    async def iter_session(self, session_id: str, after: int = 0) -> AsyncIterator[RecordedEvent]:
        """Yield the session's events after `after`, one page in memory at a time."""
        while page := await self._fetch(_session_query(session_id, after, self._page_size), "read session"):
            for item in page:
                if isinstance(item, RecordedEvent):
                    yield item
            after = page[-1].position

    async def iter_stream(self, stream: str, after_version: int = 0) -> AsyncIterator[RecordedEvent]:
        """Yield the stream's events after `after_version`, one page in memory at a time."""
        async for item in self.replay_stream(stream, after_version):
            if isinstance(item, RecordedEvent):
                yield item

    async def replay_stream(self, stream: str, after_version: int = 0) -> AsyncIterator[RecordedEvent | SkippedEvent]:
        """Yield every version of the stream after `after_version`, a `SkippedEvent` for each this code cannot read.

        For the stream's writer: the version it appends at counts the events
        a newer worker wrote there too.
        """
        while page := await self._fetch(_stream_query(stream, after_version, self._page_size), "read stream"):
            for item in page:
                yield item
            after_version = page[-1].version

    async def follow(
        self, after: int = 0, *, poll_interval: float = 1.0
    ) -> AsyncIterator[RecordedEvent | SkippedEvent]:
        """Yield every event after position `after` in order as it commits, forever.

        An event this code cannot read comes as a `SkippedEvent` (already
        logged and counted), so that a follower's checkpoint moves past it.
        A NOTIFY wakes the follower at once; it also reads every
        `poll_interval` seconds, so a lost notification only delays it. While
        the database is unreachable it logs and retries. Holds one LISTEN
        connection (outside the pool) until the generator is closed.
        """
        async with Wakeup(self._dsn) as wakeup:
            while True:
                wakeup.clear()
                try:
                    page = await self._fetch(_all_query(after, self._page_size), "read all")
                except DatabaseError as exc:
                    logger.warning("follow_read_failed", after=after, error=exc.reason)
                    await asyncio.sleep(max(poll_interval, _MIN_RETRY))
                    continue
                for item in page:
                    yield item
                    after = item.position
                if len(page) < self._page_size:
                    await wakeup.wait(poll_interval)

    async def close(self) -> None:
        """Commit the appends already queued, then refuse new ones."""
        await self._appender.close()

    async def _known(
        self, query: _Query, after: int, limit: int | None, operation: str, cursor: _Cursor = _position
    ) -> list[RecordedEvent]:
        """Read up to `limit` events this code can read: the rows it skips do not count against `limit`."""
        found: list[RecordedEvent] = []
        while True:
            wanted = None if limit is None else limit - len(found)
            page = await self._fetch(query(after, wanted), operation)
            found += [item for item in page if isinstance(item, RecordedEvent)]
            if wanted is None or len(page) < wanted or len(found) == limit:
                return found
            after = cursor(page[-1])

    async def _fetch(self, query: Select[Any], operation: str) -> list[RecordedEvent | SkippedEvent]:
        with driver_errors(operation):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        page = [decode_row(row) for row in rows]
        for item in page:
            if isinstance(item, SkippedEvent):
                self.skipped.record(item)
        return page

    async def _scalar(self, query: Select[Any], operation: str) -> int:
        with driver_errors(operation):
            async with self._engine.connect() as conn:
                return int(await conn.scalar(query))


def _canonical_id(new: NewEvent) -> NewEvent:
    """Return `new` with its event id in the canonical UUID form the database returns."""
    try:
        canonical = str(uuid.UUID(new.event_id))
    except ValueError:
        raise EventLogError(f"event_id {new.event_id!r} is not a UUID") from None
    return new if canonical == new.event_id else msgspec.structs.replace(new, event_id=canonical)
