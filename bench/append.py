"""Event append throughput of `projections.EventLog`, against raw asyncpg inserts.

Both write the same rows (msgspec-encoded `UserMessage` data and meta) into a
table of the same shape and indexes. The raw inserts draw positions from a
plain `bigserial`, with no version check, idempotency check or ordering lock:
that is the speed the log gives up for gap-free positions (DESIGN §3), and what
its group-commit appender is meant to win back. Raw asyncpg is used on
purpose: it is the yardstick.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import msgspec

from projections import EventLog, NewEvent, create_engine, migrate
from projections.database import asyncpg_dsn
from schemas import tag_of
from schemas.envelope import EventMeta
from schemas.events import UserMessage

from ._stats import Summary

RAW_TABLE = "bench_raw_events"

_RAW_DDL = (
    f"""CREATE TABLE {RAW_TABLE} (
        position bigserial PRIMARY KEY,
        stream text NOT NULL,
        version integer NOT NULL,
        session_id text NOT NULL,
        type text NOT NULL,
        schema smallint NOT NULL,
        data jsonb NOT NULL,
        meta jsonb NOT NULL,
        event_id uuid NOT NULL UNIQUE,
        recorded_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (stream, version)
    )""",
    f"CREATE INDEX {RAW_TABLE}_session_position_idx ON {RAW_TABLE} (session_id, position)",
)

_RAW_INSERT = (
    f"INSERT INTO {RAW_TABLE} (stream, version, session_id, type, schema, data, meta, event_id)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
)

SESSION = "bench-session"
CONTENT = "x" * 100
_META = EventMeta(actor="bench")


@dataclass(frozen=True, slots=True)
class Counts:
    single: int = 2000  # case (a): appends of one event, one writer
    writers: int = 16  # case (b): concurrent writers, one stream each
    per_writer: int = 125  # case (b): appends of one event per writer
    batches: int = 200  # case (c): appends of `batch_size` events, one writer
    batch_size: int = 100


@dataclass(frozen=True, slots=True)
class Throughput:
    appends: int
    events: int
    elapsed: float
    latency: Summary  # per append (one transaction for the raw inserts)

    @property
    def appends_per_second(self) -> float:
        return self.appends / self.elapsed

    @property
    def events_per_second(self) -> float:
        return self.events / self.elapsed


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    eventlog: Throughput
    raw: Throughput


def _user_message(n: int) -> UserMessage:
    key = uuid.uuid4().hex
    return UserMessage(message_id=f"m-{n}-{key[:8]}", content=CONTENT, idempotency_key=key)


def _new_event(n: int) -> NewEvent:
    return NewEvent(event=_user_message(n), session_id=SESSION, meta=_META)


def _raw_row(stream: str, version: int) -> tuple[object, ...]:
    event = _user_message(version)
    return (
        stream,
        version,
        SESSION,
        tag_of(type(event)),
        1,
        msgspec.json.encode(event).decode(),
        msgspec.json.encode(_META).decode(),
        uuid.uuid4(),
    )


async def _timed_writers(
    writers: int, appends: int, write: Callable[[int, int], Awaitable[None]]
) -> tuple[float, list[float]]:
    """Run `writers` tasks, each calling `write(writer, i)` `appends` times in sequence."""
    latencies: list[float] = []

    async def writer(w: int) -> None:
        for i in range(appends):
            sent = time.perf_counter()
            await write(w, i)
            latencies.append(time.perf_counter() - sent)

    started = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    return time.perf_counter() - started, latencies


def _throughput(appends: int, per_append: int, elapsed: float, latencies: list[float]) -> Throughput:
    return Throughput(appends, appends * per_append, elapsed, Summary.of_seconds(latencies))


async def _eventlog_case(event_log: EventLog, label: str, writers: int, appends: int, size: int) -> Throughput:
    versions = [0] * writers

    async def write(w: int, i: int) -> None:
        batch = [_new_event(versions[w] + k) for k in range(size)]
        await event_log.append(f"{label}-{w}", batch, expected_version=versions[w])
        versions[w] += size

    elapsed, latencies = await _timed_writers(writers, appends, write)
    return _throughput(writers * appends, size, elapsed, latencies)


async def _raw_case(pool: asyncpg.Pool, label: str, writers: int, appends: int, size: int) -> Throughput:
    connections = [await pool.acquire() for _ in range(writers)]
    versions = [0] * writers

    async def write(w: int, i: int) -> None:
        conn = connections[w]
        stream = f"{label}-{w}"
        if size == 1:
            versions[w] += 1
            await conn.execute(_RAW_INSERT, *_raw_row(stream, versions[w]))  # autocommit: one transaction
            return
        rows = [_raw_row(stream, versions[w] + k) for k in range(1, size + 1)]
        versions[w] += size
        async with conn.transaction():
            await conn.executemany(_RAW_INSERT, rows)

    try:
        elapsed, latencies = await _timed_writers(writers, appends, write)
    finally:
        for conn in connections:
            await pool.release(conn)
    return _throughput(writers * appends, size, elapsed, latencies)


async def _check_written(pool: asyncpg.Pool, cases: list[Case]) -> None:
    """Fail unless both tables hold every event the cases claim to have written (plus the warm-up)."""
    async with pool.acquire() as conn:
        logged = await conn.fetchval("SELECT count(*) FROM events WHERE stream LIKE 'case%'")
        raw = await conn.fetchval(f"SELECT count(*) FROM {RAW_TABLE} WHERE stream LIKE 'case%'")
    expected = sum(case.eventlog.events for case in cases)
    if logged != expected or raw != expected:
        raise RuntimeError(f"expected {expected} events in each table, found {logged} (events) and {raw} (raw)")


async def measure_appends(database_url: str, counts: Counts = Counts()) -> list[Case]:
    """Run the three cases on `database_url` (a fresh database), EventLog then raw for each."""
    engine = create_engine(database_url)
    event_log = EventLog(engine)
    pool = await asyncpg.create_pool(asyncpg_dsn(database_url), min_size=counts.writers, max_size=counts.writers)
    try:
        await migrate(engine)
        async with pool.acquire() as conn:
            for statement in _RAW_DDL:
                await conn.execute(statement)
        # Warm both paths (connections, prepared statements, appender task) outside the timing.
        await _eventlog_case(event_log, "warmup", 4, 10, 1)
        await _raw_case(pool, "warmup", 4, 10, 1)
        cases = [
            ("(a) 1 event/append, 1 writer", 1, counts.single, 1),
            (f"(b) 1 event/append, {counts.writers} writers", counts.writers, counts.per_writer, 1),
            (f"(c) {counts.batch_size} events/append, 1 writer", 1, counts.batches, counts.batch_size),
        ]
        results = []
        for index, (name, writers, appends, size) in enumerate(cases):
            label = f"case{index}"
            eventlog = await _eventlog_case(event_log, label, writers, appends, size)
            raw = await _raw_case(pool, label, writers, appends, size)
            results.append(Case(name, eventlog, raw))
        await _check_written(pool, results)
        return results
    finally:
        await event_log.close()
        await pool.close()
        await engine.dispose()
