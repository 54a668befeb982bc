"""The event log: append with optimistic concurrency, read by stream, session or position, follow."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec
import structlog
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.envelope import RecordedEvent

from ._append_request import AppendRequest, NewEvent
from ._appender import GroupAppender
from ._db import driver_errors
from ._rows import select_events, to_recorded
from ._wakeup import Wakeup
from .database import asyncpg_dsn
from .errors import DatabaseError, DuplicateEventError, EventLogError
from .tables import events

logger = structlog.get_logger(__name__)

_MIN_RETRY = 0.5  # how often an unreachable database is tried again, whatever the poll interval


class EventLog:
    """The append-only log in PostgreSQL; one instance per process, shared by its actors.

    `engine` must come from `database.create_engine` (it moves jsonb as text).
    Appends of concurrent callers are committed together by one background
    task; call `close` to let it finish.
    """

    def __init__(self, engine: AsyncEngine, *, page_size: int = 500) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._engine = engine
        self._page_size = page_size
        self._dsn = asyncpg_dsn(engine.url)
        self._appender = GroupAppender(self._dsn)

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
        return await self._appender.submit(AppendRequest(stream, batch, expected_version, future))

    async def read_stream(self, stream: str, after_version: int = 0, limit: int | None = None) -> list[RecordedEvent]:
        """Return the events of `stream` with a version above `after_version`, oldest first."""
        query = (
            select_events()
            .where(events.c.stream == stream, events.c.version > after_version)
            .order_by(events.c.version)
            .limit(limit)
        )
        return await self._fetch(query, "read stream")

    async def read_session(self, session_id: str, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Return the events of every stream of a session with a position above `after`, in order."""
        query = (
            select_events()
            .where(events.c.session_id == session_id, events.c.position > after)
            .order_by(events.c.position)
            .limit(limit)
        )
        return await self._fetch(query, "read session")

    async def read_all(self, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Return the events with a position above `after`, in position order."""
        query = select_events().where(events.c.position > after).order_by(events.c.position).limit(limit)
        return await self._fetch(query, "read all")

    async def last_position(self) -> int:
        """Return the largest committed position (0 for an empty log)."""
        return await self._scalar(select(func.coalesce(func.max(events.c.position), 0)), "read last position")

    async def stream_version(self, stream: str) -> int:
        """Return the version of `stream` (0 if it has no events)."""
        query = select(func.coalesce(func.max(events.c.version), 0)).where(events.c.stream == stream)
        return await self._scalar(query, "read stream version")

    async def iter_session(self, session_id: str, after: int = 0) -> AsyncIterator[RecordedEvent]:
        """Yield the session's events after `after`, one page in memory at a time."""
        while page := await self.read_session(session_id, after, self._page_size):
            for recorded in page:
                yield recorded
            after = page[-1].position

    async def iter_stream(self, stream: str, after_version: int = 0) -> AsyncIterator[RecordedEvent]:
        """Yield the stream's events after `after_version`, one page in memory at a time."""
        while page := await self.read_stream(stream, after_version, self._page_size):
            for recorded in page:
                yield recorded
            after_version = page[-1].version

    async def follow(self, after: int = 0, *, poll_interval: float = 1.0) -> AsyncIterator[RecordedEvent]:
        """Yield every event after position `after` in order as it commits, forever.

        A NOTIFY wakes the follower at once; it also reads every
        `poll_interval` seconds, so a lost notification only delays it. While
        the database is unreachable it logs and retries. Holds one LISTEN
        connection (outside the pool) until the generator is closed.
        """
        async with Wakeup(self._dsn) as wakeup:
            while True:
                wakeup.clear()
                try:
                    page = await self.read_all(after, self._page_size)
                except DatabaseError as exc:
                    logger.warning("follow_read_failed", after=after, error=exc.reason)
                    await asyncio.sleep(max(poll_interval, _MIN_RETRY))
                    continue
                for recorded in page:
                    yield recorded
                    after = recorded.position
                if len(page) < self._page_size:
                    await wakeup.wait(poll_interval)

    async def close(self) -> None:
        """Commit the appends already queued, then refuse new ones."""
        await self._appender.close()

    async def _fetch(self, query: Select[Any], operation: str) -> list[RecordedEvent]:
        with driver_errors(operation):
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        return [to_recorded(row) for row in rows]

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
