"""The group-commit appender: concurrent appends of one process share transactions.

Every append transaction holds one advisory lock (see `_batch`), which caps a
database at a few thousand transactions per second; putting many callers'
appends into each transaction wins that throughput back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import structlog

from schemas.envelope import RecordedEvent

from ._append_request import AppendRequest
from ._batch import DEFER, write_batch
from .errors import DatabaseError, EventLogClosedError

logger = structlog.get_logger(__name__)

_ALONE_ATTEMPTS = 3


class GroupAppender:
    """Owns a bounded queue of append requests and the task that commits them in batches."""

    def __init__(self, dsn: str, *, max_batch: int = 256, queue_size: int = 4096) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._max_batch = max_batch
        self._queue: asyncio.Queue[AppendRequest | None] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._stopping = False

    async def submit(self, request: AppendRequest) -> list[RecordedEvent]:
        """Queue `request` and wait for its outcome.

        A caller cancelled while its batch commits may still have its events
        written; retrying with the same event ids is safe.
        """
        if self._closed:
            raise EventLogClosedError()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="agentbus-appender")
        await self._queue.put(request)
        return await request.future

    async def close(self) -> None:
        """Commit what is queued, then stop the task; later appends raise `EventLogClosedError`."""
        if self._closed:
            return
        self._closed = True
        if self._task is None:
            return
        await self._queue.put(None)
        await self._task
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
        # A submit blocked on a full queue may have landed behind the stop marker.
        while not self._queue.empty():
            request = self._queue.get_nowait()
            if request is not None:
                _settle(request, EventLogClosedError())

    async def _run(self) -> None:
        carry: list[AppendRequest] = []
        while True:
            batch = await self._gather(carry)
            live = [request for request in batch if not request.future.done()]
            carry = await self._commit(live) if live else []
            if self._stopping and not carry:
                return

    async def _gather(self, carry: list[AppendRequest]) -> list[AppendRequest]:
        """Return `carry` plus whatever is queued; block for one request when there is nothing."""
        batch = list(carry)
        if not batch and not self._stopping:
            first = await self._queue.get()
            if first is None:
                self._stopping = True
                return batch
            batch.append(first)
        while len(batch) < self._max_batch and not self._stopping and not self._queue.empty():
            request = self._queue.get_nowait()
            if request is None:
                self._stopping = True
            else:
                batch.append(request)
        return batch

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A transaction on the appender's own connection, (re)connected on demand."""
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self._dsn, server_settings={"application_name": "agentbus-appender"})
        try:
            async with self._conn.transaction():
                yield self._conn
        except (asyncpg.InterfaceError, OSError):
            # The connection is in doubt: the next batch starts on a new one.
            self._conn.terminate()
            self._conn = None
            raise

    async def _commit(self, batch: list[AppendRequest]) -> list[AppendRequest]:
        """Commit `batch` in one transaction and settle its callers; return the deferred requests."""
        try:
            async with self._transaction() as conn:
                outcomes = await write_batch(conn, batch)
        except asyncpg.PostgresError as exc:
            if not _blames_a_request(exc):
                _settle_all(batch, exc)
                return []
            # One request broke the statement: a key that a writer bypassing the lock took, or
            # a value the database refuses (say a NUL character). Alone, each is checked against
            # what is committed now, so only the offender fails.
            logger.warning("append_batch_refused", requests=len(batch), error=str(exc))
            for request in batch:
                await self._commit_alone(request)
            return []
        except Exception as exc:  # a failure goes back to its callers, never kills the loop
            _settle_all(batch, exc)
            return []
        carry = []
        for request, outcome in zip(batch, outcomes, strict=True):
            if outcome is DEFER:
                carry.append(request)
            else:
                _settle(request, outcome)
        return carry

    async def _commit_alone(self, request: AppendRequest) -> None:
        outcome: object = None
        for _ in range(_ALONE_ATTEMPTS):
            try:
                async with self._transaction() as conn:
                    [outcome] = await write_batch(conn, [request])
            except asyncpg.IntegrityConstraintViolationError as exc:
                outcome = DatabaseError("append", str(exc))
                continue  # the offending row is committed now; the next attempt sees it
            except Exception as exc:  # see _commit
                outcome = _as_ours(exc)
            break
        _settle(request, outcome)


def _blames_a_request(exc: asyncpg.PostgresError) -> bool:
    """Whether the statement failed on the data (SQLSTATE class 22 or 23), not on the connection."""
    return (exc.sqlstate or "")[:2] in ("22", "23")


def _as_ours(exc: Exception) -> Exception:
    """Driver and connection failures become `DatabaseError`; our own errors pass as they are."""
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError | OSError):
        return DatabaseError("append", str(exc) or type(exc).__name__)
    return exc


def _settle_all(batch: list[AppendRequest], exc: Exception) -> None:
    for request in batch:
        _settle(request, _as_ours(exc))


def _settle(request: AppendRequest, outcome: object) -> None:
    if request.future.done():  # the caller was cancelled
        return
    if isinstance(outcome, BaseException):
        request.future.set_exception(outcome)
    else:
        request.future.set_result(outcome)  # type: ignore[arg-type]
