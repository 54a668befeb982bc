"""The projector: follows the log into the read-model tables, one active per database."""

from __future__ import annotations

import asyncio

import msgspec
import structlog
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import _locks
from ._apply import apply
from ._batch import CHANNEL
from ._db import driver_errors, reason
from ._rows import decode_row, select_events
from ._wakeup import Wakeup
from .database import asyncpg_dsn
from .eventlog import EventLog
from .skipped import SkippedEvent
from .tables import READ_MODEL_TABLES, checkpoints, events, rm_skipped_events

logger = structlog.get_logger(__name__)

_REBUILD_POLL = 0.05


class Rebuilt(msgspec.Struct, frozen=True, kw_only=True):
    """What `Projector.rebuild` did: the log it replayed and the rows the read models hold after it."""

    position: int
    """The log's last position when the rebuild began: the tables reflect the log up to at least here."""
    events: int
    """How many events of the log, up to `position`, were replayed."""
    rows: dict[str, int]
    """Rows per read-model table once rebuilt (a projector running meanwhile may have added later ones)."""


class Projector:
    """Keep `rm_sessions` and `rm_messages` in step with the log.

    Each transaction applies a page of events and moves the checkpoint `name`,
    so the tables always match the log up to the checkpoint. Across processes
    only one projector of a name is active (a session advisory lock); the
    others wait for it to go away.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        event_log: EventLog,
        name: str = "read_models",
        *,
        poll_interval: float = 1.0,
        retry_interval: float = 1.0,
    ) -> None:
        self._engine = engine
        self._event_log = event_log
        self.name = name
        self._poll_interval = poll_interval
        self._retry_interval = retry_interval
        self._dsn = asyncpg_dsn(engine.url)

    async def run(self) -> None:
        """Project until cancelled; while another projector is active, wait and retry.

        A database failure is logged and the projector starts over from its
        checkpoint after `retry_interval`; any other failure ends `run` with
        it. An event this code cannot read (a newer worker's) is no failure:
        it is skipped, counted in `rm_skipped_events`, and the checkpoint moves past it.
        """
        while True:
            try:
                await self._run_once()
            except (DBAPIError, OSError) as exc:
                logger.warning("projector_database_failed", projector=self.name, error=reason(exc))
                await asyncio.sleep(self._retry_interval)

    async def rebuild(self) -> Rebuilt:
        """Empty the read models and the checkpoint, then project the log from position 0.

        Returns once the tables reflect the log as it was when called. If
        another projector is active, it notices the reset checkpoint and does
        the replay; this call waits for it.
        """
        with driver_errors("rebuild read models"):
            async with self._engine.begin() as conn:
                # Checkpoint row first, tables second: the order a projector's transaction takes them.
                await self._reset_checkpoint(conn)
                for table in READ_MODEL_TABLES:
                    await conn.execute(delete(table))
                await conn.execute(text("SELECT pg_notify(:channel, '0')"), {"channel": CHANNEL})
            target = await self._event_log.last_position()
            async with self._engine.connect() as conn:
                try:
                    while True:
                        if await self._try_lock(conn):
                            while await self._step(conn):
                                pass
                            break
                        if await self._checkpoint(conn) >= target:
                            break
                        await asyncio.sleep(_REBUILD_POLL)
                    return await _rebuilt(conn, target)
                finally:
                    await _release(conn)

    async def _run_once(self) -> None:
        async with self._engine.connect() as conn:
            try:
                # The lock is held by another process and Postgres signals no release: polling is the only way.
                while not await self._try_lock(conn):  # noqa: ASYNC110
                    await asyncio.sleep(self._retry_interval)
                logger.info("projector_active", projector=self.name)
                async with Wakeup(self._dsn) as wakeup:
                    while True:
                        wakeup.clear()
                        if not await self._step(conn):
                            await wakeup.wait(self._poll_interval)
            finally:
                await _release(conn)

    async def _try_lock(self, conn: AsyncConnection) -> bool:
        """Take this projector's session lock if free; make sure its checkpoint row exists."""
        locked = await conn.scalar(select(func.pg_try_advisory_lock(_locks.PROJECTOR_CLASS, func.hashtext(self.name))))
        if locked:
            await conn.execute(insert(checkpoints).values(name=self.name, position=0).on_conflict_do_nothing())
        await conn.commit()
        return bool(locked)

    async def _step(self, conn: AsyncConnection) -> bool:
        """Apply one page after the checkpoint in one transaction; return whether the page was full.

        The checkpoint is read (and row-locked) in the transaction, not kept in
        memory, so a reset by `rebuild` is seen by the next step.
        """
        page_size = self._event_log.page_size
        async with conn.begin():
            after = await conn.scalar(
                select(checkpoints.c.position).where(checkpoints.c.name == self.name).with_for_update()
            )
            rows = await conn.execute(
                select_events().where(events.c.position > after).order_by(events.c.position).limit(page_size)
            )
            page = [decode_row(row) for row in rows]
            for item in page:
                if isinstance(item, SkippedEvent):
                    self._event_log.skipped.record(item)
                    await _count_skipped(conn, item)
                else:
                    await apply(conn, item)
            if page:
                await conn.execute(
                    update(checkpoints).where(checkpoints.c.name == self.name).values(position=page[-1].position)
                )
        return len(page) == page_size

    async def _checkpoint(self, conn: AsyncConnection) -> int:
        position = await conn.scalar(select(checkpoints.c.position).where(checkpoints.c.name == self.name))
        await conn.commit()
        return position or 0

    async def _reset_checkpoint(self, conn: AsyncConnection) -> None:
        upsert = insert(checkpoints).values(name=self.name, position=0)
        await conn.execute(upsert.on_conflict_do_update(index_elements=[checkpoints.c.name], set_={"position": 0}))


async def _count_skipped(conn: AsyncConnection, skipped: SkippedEvent) -> None:
    upsert = insert(rm_skipped_events).values(
        type=skipped.type,
        schema=skipped.schema,
        events=1,
        first_position=skipped.position,
        last_position=skipped.position,
    )
    # Rows are applied in position order, each once per checkpoint: the count is of events, not of reads.
    await conn.execute(
        upsert.on_conflict_do_update(
            index_elements=[rm_skipped_events.c.type, rm_skipped_events.c.schema],
            set_={"events": rm_skipped_events.c.events + 1, "last_position": skipped.position},
        )
    )


async def _rebuilt(conn: AsyncConnection, target: int) -> Rebuilt:
    replayed = await conn.scalar(select(func.count()).select_from(events).where(events.c.position <= target))
    rows = {table.name: await conn.scalar(select(func.count()).select_from(table)) or 0 for table in READ_MODEL_TABLES}
    await conn.commit()
    return Rebuilt(position=target, events=replayed or 0, rows=rows)


async def _release(conn: AsyncConnection) -> None:
    # Closing the connection ends its session and so its lock; unlocking instead
    # would fail on a broken connection and a pooled one would keep the lock on error.
    await conn.invalidate()
