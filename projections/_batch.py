"""One group-commit transaction: check every request of a batch, write the accepted ones.

The advisory lock is taken before anything is read, so the version checks see
every earlier append and the positions drawn here are larger than every
committed one: a follower that has seen position N never finds a later commit below N.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from schemas import tag_of
from schemas.envelope import RecordedEvent
from schemas.upcasters import schema_of

from . import _locks
from ._append_request import AppendRequest
from ._rows import to_recorded, to_row
from .errors import ConcurrencyError, DuplicateEventError, EventLogError
from .tables import position_seq

CHANNEL = "agentbus_events"
"""NOTIFY channel; the payload is the largest position the transaction committed."""

Outcome = list[RecordedEvent] | EventLogError


DEFER = object()
"""Outcome of a request that repeats ids of an earlier request in the same batch.

It runs in the next transaction, where it finds those ids committed (a retry)
or not (a conflict), exactly as if it had arrived a moment later.
"""

# Every statement below runs on the appender's own asyncpg connection: the
# appender commits one batch at a time, so one connection with prepared
# statements serves it, without a pool checkout or SQL compilation per batch.
_LOCK = "SELECT pg_advisory_xact_lock($1), now()"
# One backward index probe per stream on (stream, version): the cost does not
# grow with the length of the stream, as a max() over its rows would. The
# duplicate count spares the full read of recorded ids unless one exists.
_VERSIONS = (
    "SELECT s.stream,"
    " (SELECT e.version FROM events e WHERE e.stream = s.stream ORDER BY e.version DESC LIMIT 1),"
    " (SELECT count(*) FROM events e WHERE e.event_id = ANY($2::uuid[]))"
    " FROM unnest($1::text[]) AS s(stream)"
)
_BY_IDS = (
    "SELECT position, stream, version, session_id, type, schema, data::text, meta::text, event_id::text, recorded_at"
    " FROM events WHERE event_id = ANY($1::uuid[])"
)
# Draw the positions and queue the NOTIFY in one round trip; the NOTIFY is only sent if we commit.
_POSITIONS = (
    "SELECT array_agg(position ORDER BY position), pg_notify($2, max(position)::text)"
    f" FROM (SELECT nextval('{position_seq.name}') AS position FROM generate_series(1, $1)) AS drawn"
)
_INSERT = (
    "INSERT INTO events (position, stream, version, session_id, type, schema, data, meta, event_id, recorded_at)"
    " SELECT p, st, v, sid, t, sc, d, m, id, now() FROM unnest("
    "$1::bigint[], $2::text[], $3::int[], $4::text[], $5::text[], $6::smallint[], $7::jsonb[], $8::jsonb[], $9::uuid[]"
    ") AS rows(p, st, v, sid, t, sc, d, m, id)"
)


async def write_batch(conn: asyncpg.Connection, batch: list[AppendRequest]) -> list[Outcome | object]:
    """Check and write `batch` inside the caller's transaction; return one outcome per request.

    Refused requests get their error as outcome and write nothing; the others are
    inserted. A unique violation here (a writer that bypassed the lock) raises
    `asyncpg.UniqueViolationError` and the caller must roll back.
    """
    recorded_at: datetime = (await conn.fetchrow(_LOCK, _locks.APPEND))[1]
    ids = [event_id for request in batch for event_id in request.event_ids]
    streams = list({request.stream for request in batch})
    version_rows = await conn.fetch(_VERSIONS, streams, ids)
    versions: dict[str, int] = {stream: version for stream, version, _ in version_rows if version is not None}
    duplicates = version_rows[0][2] if version_rows else 0  # every row carries the same count
    existing = {row[8]: to_recorded(row) for row in await conn.fetch(_BY_IDS, ids)} if duplicates else {}

    outcomes: list[Outcome | object] = []
    planned: list[tuple[AppendRequest, int]] = []  # accepted request, version before it
    seen: set[str] = set()
    for request in batch:
        outcome = _check(request, existing, versions, seen)
        if outcome is None:
            planned.append((request, versions.get(request.stream, 0)))
            versions[request.stream] = versions.get(request.stream, 0) + len(request.events)
        outcomes.append(outcome)
        seen.update(request.event_ids)
    if not planned:
        return outcomes

    count = sum(len(request.events) for request, _ in planned)
    positions = iter((await conn.fetchrow(_POSITIONS, count, CHANNEL))[0])
    written: dict[AppendRequest, list[RecordedEvent]] = {}
    for request, base in planned:
        written[request] = [
            RecordedEvent(
                position=next(positions),
                stream=request.stream,
                version=base + offset,
                session_id=new.session_id,
                event_id=new.event_id,
                schema=schema_of(tag_of(type(new.event))),
                recorded_at=recorded_at,
                meta=new.meta,
                event=new.event,
            )
            for offset, new in enumerate(request.events, start=1)
        ]
    rows = [to_row(recorded) for batch_rows in written.values() for recorded in batch_rows]
    await conn.execute(_INSERT, *(list(column) for column in zip(*rows, strict=True)))
    return [written.get(request, outcome) for request, outcome in zip(batch, outcomes, strict=True)]


def _check(
    request: AppendRequest,
    existing: dict[str, RecordedEvent],
    versions: dict[str, int],
    seen: set[str],
) -> Outcome | object | None:
    """Return the outcome decided without writing (retry, error, deferral), or None to write."""
    ids = request.event_ids
    if seen.intersection(ids):
        return DEFER
    found = [existing[event_id] for event_id in ids if event_id in existing]
    if found:
        if len(found) == len(ids) and all(recorded.stream == request.stream for recorded in found):
            return found  # an idempotent retry: the caller gets what its first attempt wrote
        return DuplicateEventError(request.stream, [recorded.event_id for recorded in found])
    actual = versions.get(request.stream, 0)
    if request.expected_version is not None and request.expected_version != actual:
        return ConcurrencyError(request.stream, request.expected_version, actual)
    return None
