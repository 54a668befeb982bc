"""Erasure: a session's events replaced by one tombstone.

Everything of the session goes (its own stream, its turns', boards', teams'
and refusals' streams: every event recorded under its id) with the rows the
read models built from them, in one transaction that holds the append lock,
so no append interleaves and the tombstone's position is drawn in order like
any other. The tombstone (`SessionErased`) takes the next version of the
session's stream, and a `StreamErased` the next version of each of its other
streams (turns, boards, teams): an actor that still holds one fails its version
check, and reloads to a session that does not exist, or to work it must not
start again (`actors.runtime`). The projector applies the
tombstone like any event (`erase_views`), so a rebuild gives the same tables,
and what it projected from a page it read before the erasure is removed again.
What lives on NATS (the session's commands, its uploads) is removed by the
worker that relays the tombstone.
"""

from __future__ import annotations

import uuid

import msgspec
from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from schemas import tag_of
from schemas.envelope import EventMeta
from schemas.events import ErasureReason, SessionErased, StreamErased
from schemas.streams import session_stream
from schemas.upcasters import schema_of

from . import _locks
from ._batch import CHANNEL
from ._db import driver_errors
from .tables import events, position_seq, rm_department_usage, rm_messages, rm_sessions, rm_usage

TOMBSTONES = (tag_of(SessionErased), tag_of(StreamErased))

_UPLOAD = r"(\m[0-9a-f]{32}(?:\.[A-Za-z0-9]{1,10})?\M)"
"""An upload's stored name as a message or a tool call names it (`bus.objects.UPLOAD_NAME`, as a word)."""

# Uploads are named by what the user wrote and by the tools' arguments; ids elsewhere in the events are
# the same 32 hex digits, so only these texts are searched.
_NAMED_UPLOADS = text(
    "SELECT DISTINCT found[1] FROM events,"
    " regexp_matches(CASE WHEN type = 'tool_called' THEN data->>'arguments' ELSE data->>'content' END,"
    " :pattern, 'g') AS found"
    " WHERE session_id = :session_id AND type IN ('user_message', 'tool_called')"
    " ORDER BY 1"
)
_VERSION = text("SELECT max(version) FROM events WHERE stream = :stream")
# The session's streams that hold something to erase, each at its last version (earlier tombstones included).
_STREAMS = text(
    "SELECT stream, max(version) FROM events WHERE session_id = :session_id"
    " GROUP BY stream HAVING bool_or(type <> ALL(:tombstones)) ORDER BY stream"
)
_POSITION = text(f"SELECT nextval('{position_seq.name}') AS position")
_NOTIFY = text("SELECT pg_notify(:channel, :position)")
_INSERT = text(
    "INSERT INTO events (position, stream, version, session_id, type, schema, data, meta, event_id)"
    " VALUES (:position, :stream, :version, :session_id, :type, :schema, CAST(:data AS jsonb),"
    " CAST(:meta AS jsonb), CAST(:event_id AS uuid))"
)


class Erased(msgspec.Struct, frozen=True, kw_only=True):
    """What one erasure did: the tombstone's position and what it records."""

    session_id: str
    position: int
    tombstone: SessionErased


async def erase_session(
    engine: AsyncEngine, session_id: str, *, by: str, reason: ErasureReason = "erased"
) -> Erased | None:
    """Replace the events of `session_id` by one `SessionErased` (and a `StreamErased` ending each of its other
    streams); None if it has nothing to erase.

    A session erased before and not written to since has nothing to erase:
    erasing twice records one tombstone. Its earlier tombstones stay.
    """
    with driver_errors("erase session"):
        async with engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _locks.APPEND})
            found = {"session_id": session_id, "tombstones": list(TOMBSTONES)}
            streams: dict[str, int] = {stream: last for stream, last in await conn.execute(_STREAMS, found)}
            if not streams:
                return None
            content = (events.c.session_id == session_id) & events.c.type.not_in(TOMBSTONES)
            count = int(await conn.scalar(select(func.count()).select_from(events).where(content)) or 0)
            uploads = list((await conn.execute(_NAMED_UPLOADS, {"pattern": _UPLOAD, **found})).scalars())
            session = session_stream(session_id)
            version = streams.pop(session, None) or await conn.scalar(_VERSION, {"stream": session}) or 0
            await conn.execute(
                delete(rm_department_usage).where(
                    rm_department_usage.c.event_id.in_(select(events.c.event_id).where(content))
                )
            )
            await conn.execute(delete(events).where(content))
            await erase_views(conn, session_id)
            tombstone = SessionErased(erased_by=by, reason=reason, events_erased=count, uploads=uploads)
            position = await _record(conn, session, version + 1, session_id, tombstone)
            for stream, last in streams.items():
                await _record(conn, stream, last + 1, session_id, StreamErased())
    return Erased(session_id=session_id, position=position, tombstone=tombstone)


async def erase_views(conn: AsyncConnection, session_id: str) -> None:
    """Delete what the read models show of `session_id` (the projector does it again for the tombstone)."""
    for table in (rm_messages, rm_usage, rm_sessions):
        await conn.execute(delete(table).where(table.c.session_id == session_id))


async def _record(
    conn: AsyncConnection, stream: str, version: int, session_id: str, event: SessionErased | StreamErased
) -> int:
    """Insert a tombstone at the next position (the caller holds the append lock) and wake the followers."""
    position = int(await conn.scalar(_POSITION) or 0)
    await conn.execute(
        _INSERT,
        {
            "position": position,
            "stream": stream,
            "version": version,
            "session_id": session_id,
            "type": tag_of(type(event)),
            "schema": schema_of(tag_of(type(event))),
            "data": msgspec.json.encode(event).decode(),
            "meta": msgspec.json.encode(EventMeta(actor="erasure")).decode(),
            "event_id": str(uuid.uuid4()),
        },
    )
    await conn.execute(_NOTIFY, {"channel": CHANNEL, "position": str(position)})
    return position
