"""The event log under concurrency: group commit, one winner per version, no gaps behind followers."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from itertools import pairwise

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from projections import ConcurrencyError, DatabaseError, EventLog, NewEvent, create_engine
from projections.database import asyncpg_dsn
from schemas.envelope import RecordedEvent
from schemas.events import UserMessage


@pytest.fixture
async def log(engine: AsyncEngine) -> AsyncIterator[EventLog]:
    log = EventLog(engine)
    yield log
    await log.close()


def said(text: str = "hi") -> NewEvent:
    return NewEvent(
        event=UserMessage(message_id=uuid.uuid4().hex, content=text, idempotency_key=uuid.uuid4().hex),
        session_id="s1",
    )


async def test_fifty_concurrent_appenders_to_distinct_streams_all_succeed_in_shared_transactions(log: EventLog) -> None:
    results = await asyncio.gather(*(log.append(f"stream-{i}", [said(), said()], 0) for i in range(50)))
    assert all([r.version for r in recorded] == [1, 2] for recorded in results)
    positions = sorted(r.position for recorded in results for r in recorded)
    assert len(set(positions)) == 100
    # recorded_at is the transaction's now(): fewer distinct values than callers means shared commits.
    assert len({recorded[0].recorded_at for recorded in results}) < 50


async def test_same_expected_version_from_many_callers_and_processes_has_exactly_one_winner(
    engine: AsyncEngine, log: EventLog, fresh_database_url: str
) -> None:
    other_engine = create_engine(fresh_database_url)
    other = EventLog(other_engine)
    try:
        attempts = [log.append("session-s1", [said()], 0) for _ in range(10)]
        attempts += [other.append("session-s1", [said()], 0) for _ in range(10)]
        outcomes = await asyncio.gather(*attempts, return_exceptions=True)
    finally:
        await other.close()
        await other_engine.dispose()
    winners = [o for o in outcomes if isinstance(o, list)]
    losers = [o for o in outcomes if isinstance(o, ConcurrencyError)]
    assert len(winners) == 1 and len(losers) == 19
    assert all((e.expected, e.actual) == (0, 1) for e in losers)
    assert await log.stream_version("session-s1") == 1


async def test_appends_to_one_stream_in_one_batch_chain_their_version_checks(log: EventLog) -> None:
    checked = await asyncio.gather(*(log.append("session-s1", [said(str(v))], v) for v in range(10)))
    unchecked = await asyncio.gather(*(log.append("session-s1", [said(), said()], None) for _ in range(5)))
    assert [r[0].version for r in checked] == list(range(1, 11))
    assert sorted(r.version for recorded in unchecked for r in recorded) == list(range(11, 21))


async def test_a_conflict_fails_only_its_own_caller_in_a_shared_batch(log: EventLog) -> None:
    await log.append("b", [said()], 0)
    a, b, c = await asyncio.gather(
        log.append("a", [said()], 0),
        log.append("b", [said()], 0),
        log.append("c", [said()], 0),
        return_exceptions=True,
    )
    assert isinstance(b, ConcurrencyError) and (b.stream, b.actual) == ("b", 1)
    assert isinstance(a, list) and isinstance(c, list)
    assert a[0].recorded_at == c[0].recorded_at  # they did share the transaction


async def test_a_retry_racing_its_first_attempt_returns_the_same_events(log: EventLog) -> None:
    batch = [said("a"), said("b")]
    first, second = await asyncio.gather(log.append("s", batch, 0), log.append("s", batch, 0))
    assert first == second
    assert len(await log.read_all()) == 2


async def test_a_writer_bypassing_the_lock_fails_only_the_caller_it_collides_with(
    log: EventLog, engine: AsyncEngine
) -> None:
    """The batch's unique violation makes the appender commit request by request."""
    outsider = await asyncpg.connect(asyncpg_dsn(engine.url))
    try:
        transaction = outsider.transaction()
        await transaction.start()
        await outsider.execute(
            "INSERT INTO events (stream, version, session_id, type, schema, data, meta, event_id)"
            " VALUES ('victim', 1, 's1', 'user_message', 1, $1, '{}', $2)",
            '{"type": "user_message", "message_id": "m", "content": "outside", "idempotency_key": "k"}',
            uuid.uuid4(),
        )
        with capture_logs() as logs:
            appends = asyncio.gather(
                log.append("victim", [said()], 0), log.append("bystander", [said()], 0), return_exceptions=True
            )
            async with asyncio.timeout(5):  # until the batch's insert waits on the outsider's row
                while not await outsider.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted"):
                    await asyncio.sleep(0.01)
            await transaction.commit()
            victim, bystander = await appends
    finally:
        await outsider.close()
    assert [entry["requests"] for entry in logs if entry["event"] == "append_batch_refused"] == [2]
    assert isinstance(victim, ConcurrencyError) and (victim.expected, victim.actual) == (0, 1)
    assert isinstance(bystander, list) and bystander[0].version == 1


async def test_a_value_the_database_refuses_fails_only_its_own_caller(log: EventLog) -> None:
    """jsonb refuses NUL characters; the rest of the shared batch still commits."""
    bad, good = await asyncio.gather(
        log.append("bad", [said("nul \x00 inside")], 0), log.append("good", [said()], 0), return_exceptions=True
    )
    assert isinstance(bad, DatabaseError) and bad.operation == "append"
    assert isinstance(good, list) and good[0].version == 1
    assert await log.stream_version("bad") == 0


async def _write(log: EventLog, writer: int, appends: int) -> None:
    for _ in range(appends):
        stream = f"w{writer}-{random.randrange(5)}"
        await log.append(stream, [said() for _ in range(random.randint(1, 3))], None)
        if random.random() < 0.3:
            await asyncio.sleep(0)


async def _follow(log: EventLog, seen: list[int]) -> None:
    async for recorded in log.follow(0, poll_interval=0.05):
        seen.append(recorded.position)


async def test_no_gaps_appear_behind_followers_with_concurrent_writer_processes(
    fresh_database_url: str, log: EventLog
) -> None:
    """Each writer process has its own engine; a follower never sees a position below one it saw."""
    engines = [create_engine(fresh_database_url, pool_size=4) for _ in range(4)]
    writers = [EventLog(engine) for engine in engines]
    seen: tuple[list[int], list[int]] = ([], [])
    followers = [asyncio.create_task(_follow(log, positions)) for positions in seen]
    try:
        await asyncio.gather(*(_write(w, n * 10 + t, 15) for n, w in enumerate(writers) for t in range(10)))
        last = await log.last_position()
        async with asyncio.timeout(20):
            while any(not positions or positions[-1] < last for positions in seen):
                await asyncio.sleep(0.05)
    finally:
        for task in followers:
            task.cancel()
        await asyncio.wait(followers)
        for writer in writers:
            await writer.close()
        for engine in engines:
            await engine.dispose()
    everything = [r.position for r in await _read_everything(log)]
    for positions in seen:
        assert all(a < b for a, b in pairwise(positions))
        assert positions == everything
    assert len(everything) >= 600


async def _read_everything(log: EventLog) -> list[RecordedEvent]:
    out: list[RecordedEvent] = []
    while page := await log.read_all(out[-1].position if out else 0, 1000):
        out.extend(page)
    return out
