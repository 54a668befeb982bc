"""The quota store: an atomic reservation in PostgreSQL before each model call, settled after it.

A call reserves its share of every quota of every department it counts
against in one transaction: one `INSERT … ON CONFLICT DO UPDATE … WHERE used <
limit RETURNING` per counter, taken in one order (so two reservations never
deadlock). The row lock makes concurrent reservations on any number of
workers take turns, and a reservation is admitted only while the counter is
below its limit, so the quota is overrun by at most the last admitted call.
Requests reserve 1; tokens reserve the call's most (prompt and `max_tokens`)
and are settled to what it took once it answered. A store that does not
answer within `TIMEOUT` raises `QuotaUnavailable`: the caller refuses the
call (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

import msgspec
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from schemas.quotas import Period, QuotaInfo, QuotaType

from ._db import reason
from .errors import DatabaseError
from .tables import quota_counters, rm_department_members, rm_quotas

TIMEOUT_MS = 3000
"""How long a reservation may wait for the database (its locks and statements) before the call is refused."""


class QuotaUnavailable(DatabaseError):
    """The quota store did not answer: the call it was for must not be made."""


class Counter(msgspec.Struct, frozen=True, kw_only=True, order=True):
    """One quota's counter in its current period."""

    department_id: str
    quota_type: QuotaType
    period: Period
    period_start: date


class Reservation(msgspec.Struct, frozen=True, kw_only=True):
    """What a call reserved: its departments, and the token counters with the tokens it took from them."""

    departments: tuple[str, ...]
    token_counters: tuple[Counter, ...] = ()
    tokens: int = 0


def period_start(period: Period, now: datetime) -> date:
    """The first day of the UTC day or month `now` falls in."""
    day = now.astimezone(UTC).date()
    return day if period == "day" else day.replace(day=1)


class QuotaStore:
    """Reservations against the departments' quotas (`rm_quotas`, as the log's `quota_set` events left them)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def reserve(
        self, user_id: str, departments: Iterable[str], tokens: int, *, now: datetime | None = None
    ) -> Reservation | QuotaInfo:
        """Reserve one request and `tokens` of every quota of the user's departments, or return the one that is full.

        The departments are those given (a token's) and those the log made the
        user a member of. Nothing is reserved when one quota is full.
        `QuotaUnavailable` when the store does not answer.
        """
        now = now or datetime.now(UTC)
        try:
            async with self._engine.begin() as conn:
                await conn.execute(text(f"SET LOCAL lock_timeout = {TIMEOUT_MS}"))
                await conn.execute(text(f"SET LOCAL statement_timeout = {TIMEOUT_MS}"))
                counted = await _departments(conn, user_id, departments)
                reserved: list[Counter] = []
                for counter, limit in await _quotas(conn, counted, now):
                    amount = 1 if counter.quota_type == "requests" else tokens
                    await _take(conn, counter, amount, limit)
                    if counter.quota_type == "tokens":
                        reserved.append(counter)
                return Reservation(departments=counted, token_counters=tuple(reserved), tokens=tokens)
        except _Full as full:
            return full.info  # leaving the block rolled back what the other counters took
        except (DBAPIError, OSError) as exc:
            raise QuotaUnavailable("reserve quota", reason(exc)) from exc

    async def settle(self, reservation: Reservation, tokens: int) -> None:
        """Count what the call took instead of what it reserved (`QuotaUnavailable` if the store does not answer)."""
        change = tokens - reservation.tokens
        if not reservation.token_counters or change == 0:
            return
        try:
            async with self._engine.begin() as conn:
                await conn.execute(text(f"SET LOCAL statement_timeout = {TIMEOUT_MS}"))
                for counter in reservation.token_counters:
                    c = quota_counters.c
                    await conn.execute(
                        update(quota_counters)
                        .where(
                            c.department_id == counter.department_id,
                            c.quota_type == counter.quota_type,
                            c.period == counter.period,
                            c.period_start == counter.period_start,
                        )
                        .values(used=func.greatest(c.used + change, 0))
                    )
        except (DBAPIError, OSError) as exc:
            raise QuotaUnavailable("settle quota", reason(exc)) from exc

    async def current(self, department_id: str, *, now: datetime | None = None) -> list[QuotaInfo]:
        """Every quota of a department with what its counter holds in the current period."""
        now = now or datetime.now(UTC)
        try:
            async with self._engine.connect() as conn:
                return [
                    QuotaInfo(
                        department_id=counter.department_id,
                        quota_type=counter.quota_type,
                        period=counter.period,
                        limit=limit,
                        current=await _used(conn, counter),
                    )
                    for counter, limit in await _quotas(conn, (department_id,), now)
                ]
        except (DBAPIError, OSError) as exc:
            raise QuotaUnavailable("read quota", reason(exc)) from exc


async def _departments(conn: AsyncConnection, user_id: str, given: Iterable[str]) -> tuple[str, ...]:
    members = rm_department_members.c
    recorded = (await conn.execute(select(members.department_id).where(members.user_id == user_id))).scalars()
    return tuple(sorted({*given, *recorded}))


async def _quotas(conn: AsyncConnection, departments: Iterable[str], now: datetime) -> list[tuple[Counter, int]]:
    """The quotas of `departments` with their limits, in the one order every reservation takes them."""
    q = rm_quotas.c
    rows = (await conn.execute(select(rm_quotas).where(q.department_id.in_(list(departments))))).all()
    found = [
        (
            Counter(
                department_id=row.department_id,
                quota_type=row.quota_type,
                period=row.period,
                period_start=period_start(row.period, now),
            ),
            int(row.quota_limit),
        )
        for row in rows
    ]
    return sorted(found)


class _Full(Exception):
    """A quota is full: the reservation's transaction is rolled back."""

    def __init__(self, info: QuotaInfo) -> None:
        super().__init__(info.department_id)
        self.info = info


async def _take(conn: AsyncConnection, counter: Counter, amount: int, limit: int) -> None:
    """Add `amount` to a counter that is below `limit`; `_Full` if it is not."""
    if limit > 0:
        values = msgspec.structs.asdict(counter) | {"used": amount}
        upsert = insert(quota_counters).values(values)
        taken = await conn.scalar(
            upsert.on_conflict_do_update(
                index_elements=list(quota_counters.primary_key),
                set_={"used": quota_counters.c.used + upsert.excluded.used},
                where=quota_counters.c.used < limit,
            ).returning(quota_counters.c.used)
        )
        if taken is not None:
            return
    raise _Full(
        QuotaInfo(
            department_id=counter.department_id,
            quota_type=counter.quota_type,
            period=counter.period,
            limit=limit,
            current=await _used(conn, counter),
        )
    )


async def _used(conn: AsyncConnection, counter: Counter) -> int:
    c = quota_counters.c
    used = await conn.scalar(
        select(c.used).where(
            c.department_id == counter.department_id,
            c.quota_type == counter.quota_type,
            c.period == counter.period,
            c.period_start == counter.period_start,
        )
    )
    return int(used or 0)
