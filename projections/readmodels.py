"""Read models: sessions and their messages as the REST API shows them, fed by the `Projector`."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import msgspec
from sqlalchemy import Row, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas.commands import Metadata

from ._db import driver_errors
from ._projector import Projector
from .department_views import DepartmentViews
from .eventlog import EventLog
from .tables import checkpoints, rm_messages, rm_sessions, rm_skipped_events, rm_usage

__all__ = ["MessageView", "Projector", "ReadModels", "SessionView", "SkippedCount"]

_metadata = msgspec.json.Decoder(Metadata)


class UsageTotals(msgspec.Struct, frozen=True, kw_only=True):
    """Model calls and their tokens, summed; `truncated`: how many answers were cut at their limit."""

    calls: int
    prompt_tokens: int
    completion_tokens: int
    truncated: int


class SkippedCount(msgspec.Struct, frozen=True, kw_only=True):
    """How many events of one type and schema the projector skipped, and where the first and last were."""

    type: str
    schema: int
    events: int
    first_position: int
    last_position: int


class SessionView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A session as `GET /sessions` returns it; times are ISO 8601 strings."""

    session_id: str
    agent_name: str
    status: Literal["active", "closed"]
    metadata: Metadata
    created_at: str
    updated_at: str
    usage: UsageTotals | None = None
    """The session's model usage (`GET /sessions/{id}` only)."""
    title: str | None = None
    """What clients list the session by: its rename, else its first message (shortened)."""
    owner: str | None = None
    """The user who created it (only they and admins see it); None for a session created without a user."""


class MessageView(msgspec.Struct, frozen=True, kw_only=True):
    """A message as `GET /sessions/{id}/messages` returns it."""

    message_id: str
    session_id: str
    role: Literal["user", "assistant"]
    content: str
    tool_call_id: str | None = None
    agent_name: str | None
    created_at: str
    metadata: dict[str, Any] | None = None
    """How to draw a board message (`message_type`, expert identity, `board_round`, ...); None for plain chat."""


class ReadModels:
    """Queries on the read-model tables; they lag the log until the projector catches up."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.departments = DepartmentViews(engine)
        """Departments, their members, quotas and usage (the admin API's)."""

    async def list_sessions(self, q: str | None = None, *, owner: str | None = None) -> list[SessionView]:
        """Return every session, open or closed, oldest first; with `q`, those whose title or a message contains it;
        with `owner`, only that user's."""
        query = select(rm_sessions).order_by(rm_sessions.c.created_at, rm_sessions.c.session_id)
        if owner is not None:
            query = query.where(rm_sessions.c.owner == owner)
        if q:
            pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            said = select(rm_messages.c.session_id).where(rm_messages.c.content.ilike(pattern, escape="\\"))
            query = query.where(
                or_(rm_sessions.c.title.ilike(pattern, escape="\\"), rm_sessions.c.session_id.in_(said))
            )
        return [_session(row) for row in await self._rows(query, "list sessions")]

    async def get_session(self, session_id: str) -> SessionView | None:
        """Return the session, or None if the projector has not seen it."""
        rows = await self._rows(select(rm_sessions).where(rm_sessions.c.session_id == session_id), "read session")
        return _session(rows[0]) if rows else None

    async def list_messages(self, session_id: str, limit: int | None = None, offset: int = 0) -> list[MessageView]:
        """Return the session's messages oldest first, `offset` skipped, at most `limit`."""
        query = (
            select(rm_messages)
            .where(rm_messages.c.session_id == session_id)
            .order_by(rm_messages.c.position)
            .limit(limit)
            .offset(offset)
        )
        return [_message(row) for row in await self._rows(query, "list messages")]

    async def usage(self, session_id: str | None = None) -> UsageTotals:
        """What the model calls took, summed over everything or one session (as far as the projector got)."""
        query = select(
            func.count(),
            func.coalesce(func.sum(rm_usage.c.prompt_tokens), 0),
            func.coalesce(func.sum(rm_usage.c.completion_tokens), 0),
            func.count().filter(rm_usage.c.truncated),
        )
        if session_id is not None:
            query = query.where(rm_usage.c.session_id == session_id)
        # PostgreSQL sums bigints as numeric: back to int.
        calls, prompt, completion, truncated = (int(value) for value in (await self._rows(query, "read usage"))[0])
        return UsageTotals(calls=calls, prompt_tokens=prompt, completion_tokens=completion, truncated=truncated)

    async def skipped_events(self) -> list[SkippedCount]:
        """The events the projector went past because its code could not read them, per type and schema."""
        query = select(rm_skipped_events).order_by(rm_skipped_events.c.type, rm_skipped_events.c.schema)
        return [
            SkippedCount(
                type=row.type,
                schema=row.schema,
                events=row.events,
                first_position=row.first_position,
                last_position=row.last_position,
            )
            for row in await self._rows(query, "read skipped events")
        ]

    async def checkpoint(self, name: str = "read_models") -> int:
        """The last log position projector `name` has applied (0 before its first event)."""
        rows = await self._rows(select(checkpoints.c.position).where(checkpoints.c.name == name), "read checkpoint")
        return rows[0].position if rows else 0

    async def wait_caught_up(self, event_log: EventLog, timeout: float = 2.0, name: str = "read_models") -> bool:
        """Wait until projector `name` has applied the log up to its last position at call time.

        Returns False if that takes longer than `timeout` seconds.
        """
        target = await event_log.last_position()
        if target == 0:
            return True
        query = select(checkpoints.c.position).where(checkpoints.c.name == name)
        delay = 0.005
        try:
            async with asyncio.timeout(timeout):
                while True:
                    rows = await self._rows(query, "read checkpoint")
                    if rows and rows[0].position >= target:
                        return True
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.05)
        except TimeoutError:
            return False

    async def _rows(self, query: Any, operation: str) -> list[Row[Any]]:
        with driver_errors(operation):
            async with self._engine.connect() as conn:
                return list((await conn.execute(query)).all())


def _session(row: Row[Any]) -> SessionView:
    return SessionView(
        session_id=row.session_id,
        agent_name=row.agent_name,
        status=row.status,
        metadata=_metadata.decode(row.metadata),
        created_at=row.created_at.isoformat(),
        updated_at=row.updated_at.isoformat(),
        title=row.title,
        owner=row.owner,
    )


def _message(row: Row[Any]) -> MessageView:
    return MessageView(
        message_id=row.message_id,
        session_id=row.session_id,
        role=row.role,
        content=row.content,
        agent_name=row.agent_name,
        created_at=row.created_at.isoformat(),
        metadata=None if row.metadata is None else msgspec.json.decode(row.metadata),
    )
