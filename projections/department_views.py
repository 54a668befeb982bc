"""Departments as the admin API shows them: members, quotas with their counters, usage projected from the log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.quotas import QuotaInfo

from ._db import driver_errors
from .quotas import QuotaStore, period_start
from .tables import rm_department_members, rm_department_usage, rm_departments


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """The model calls counted against a department and their tokens, today and this month (UTC)."""

    requests_today: int = 0
    tokens_today: int = 0
    requests_this_month: int = 0
    tokens_this_month: int = 0


class DepartmentView(msgspec.Struct, frozen=True, kw_only=True):
    """A department: its members (besides the users whose tokens name it), quotas and usage."""

    department_id: str
    name: str
    members: list[str]
    quotas: list[QuotaInfo]
    """Each quota with its limit and `current`: what calls reserved of it in the current period."""
    usage: Usage
    """What the log's model calls counted against it (as far as the projector got)."""


class DepartmentViews:
    """Queries on the department read models."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._quotas = QuotaStore(engine)

    async def list_departments(self) -> list[DepartmentView]:
        """Every department, by id."""
        query = select(rm_departments).order_by(rm_departments.c.department_id)
        return [await self._view(row) for row in await self._rows(query, "list departments")]

    async def get_department(self, department_id: str) -> DepartmentView | None:
        """One department, or None if the projector has not seen it."""
        query = select(rm_departments).where(rm_departments.c.department_id == department_id)
        rows = await self._rows(query, "read department")
        return await self._view(rows[0]) if rows else None

    async def _view(self, row: Row[Any]) -> DepartmentView:
        department_id = row.department_id
        members = rm_department_members.c
        query = select(members.user_id).where(members.department_id == department_id).order_by(members.user_id)
        return DepartmentView(
            department_id=department_id,
            name=row.name,
            members=[member.user_id for member in await self._rows(query, "read members")],
            quotas=await self._quotas.current(department_id),
            usage=await self._usage(department_id),
        )

    async def _usage(self, department_id: str) -> Usage:
        now = datetime.now(UTC)
        u = rm_department_usage.c
        today, month = period_start("day", now), period_start("month", now)
        query = select(
            func.count().filter(u.day == today),
            func.coalesce(func.sum(u.tokens).filter(u.day == today), 0),
            func.count(),
            func.coalesce(func.sum(u.tokens), 0),
        ).where(u.department_id == department_id, u.day >= month)
        # PostgreSQL sums bigints as numeric: back to int.
        day_calls, day_tokens, month_calls, month_tokens = (int(v) for v in (await self._rows(query, "read usage"))[0])
        return Usage(
            requests_today=day_calls,
            tokens_today=day_tokens,
            requests_this_month=month_calls,
            tokens_this_month=month_tokens,
        )

    async def _rows(self, query: Any, operation: str) -> list[Row[Any]]:
        with driver_errors(operation):
            async with self._engine.connect() as conn:
                return list((await conn.execute(query)).all())
