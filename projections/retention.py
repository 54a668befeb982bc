"""Retention: erase the sessions that were closed longer ago than configured.

A sweep holds an advisory lock for as long as it runs, so however many
workers sweep on a timer, one sweeps at a time and the others skip their turn;
an erasure is idempotent besides, so a sweep cut short is simply done again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from . import _locks
from ._db import driver_errors
from .erasure import Erased, erase_session
from .tables import rm_sessions

RETENTION = "retention"
"""Who an expiry is recorded as."""


async def expired_sessions(engine: AsyncEngine, days: float, *, now: datetime | None = None) -> list[str]:
    """The sessions closed more than `days` days before `now` (by their last change), the oldest first."""
    before = (now or datetime.now(UTC)) - timedelta(days=days)
    query = (
        select(rm_sessions.c.session_id)
        .where(rm_sessions.c.status == "closed", rm_sessions.c.updated_at < before)
        .order_by(rm_sessions.c.updated_at, rm_sessions.c.session_id)
    )
    with driver_errors("find expired sessions"):
        async with engine.connect() as conn:
            return list((await conn.execute(query)).scalars())


async def sweep(engine: AsyncEngine, days: float, *, now: datetime | None = None) -> list[Erased] | None:
    """Erase every session closed more than `days` days ago; None if another sweep holds the lock."""
    with driver_errors("retention sweep"):
        async with engine.connect() as lock:
            # Transaction scope: the lock goes with this connection's transaction, even if the process dies.
            async with lock.begin():
                held = await lock.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _locks.RETENTION})
                if not held:
                    return None
                erased = []
                for session_id in await expired_sessions(engine, days, now=now):
                    done = await erase_session(engine, session_id, by=RETENTION, reason="expired")
                    if done is not None:
                        erased.append(done)
                return erased
