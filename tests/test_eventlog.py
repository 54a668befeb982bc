"""Contract of the event log: append with versions and idempotent retries, reads, paging."""

from __future__ import annotations

import asyncio
import tracemalloc
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from projections import (
    ConcurrencyError,
    DuplicateEventError,
    EventLog,
    EventLogClosedError,
    EventLogError,
    NewEvent,
)
from projections.database import asyncpg_dsn
from schemas.envelope import EventMeta
from schemas.events import SessionCreated, TurnStarted, UserMessage


@pytest.fixture
async def log(engine: AsyncEngine) -> AsyncIterator[EventLog]:
    log = EventLog(engine, page_size=7)
    yield log
    await log.close()


def said(text: str = "hi", session_id: str = "s1") -> NewEvent:
    return NewEvent(
        event=UserMessage(message_id=uuid.uuid4().hex, content=text, idempotency_key=uuid.uuid4().hex),
        session_id=session_id,
    )


def texts(recorded: list) -> list[str]:
    return [r.event.content for r in recorded]


async def test_versions_start_at_one_and_follow_each_other(log: EventLog) -> None:
    first = await log.append("session-s1", [said("a"), said("b")], 0)
    second = await log.append("session-s1", [said("c")], 2)
    assert [r.version for r in first + second] == [1, 2, 3]
    assert await log.stream_version("session-s1") == 3


async def test_append_returns_what_reads_return(log: EventLog) -> None:
    meta = EventMeta(correlation_id="c1", causation_id="cmd-1", actor="session")
    opened = SessionCreated(session_id="s1", agent_name="a", metadata={"k": 1})
    created = NewEvent(event=opened, session_id="s1", meta=meta)
    appended = await log.append("session-s1", [created, said()], 0)
    assert await log.read_stream("session-s1") == appended
    assert appended[0].meta == meta
    assert appended[0].event == created.event
    assert appended[0].event_id == created.event_id
    assert appended[0].schema == 1
    assert appended[0].recorded_at.tzinfo is not None
    assert appended[0].position < appended[1].position


async def test_expected_version_zero_means_the_stream_must_be_empty(log: EventLog) -> None:
    await log.append("session-s1", [said()], 0)
    with pytest.raises(ConcurrencyError) as raised:
        await log.append("session-s1", [said()], 0)
    assert (raised.value.stream, raised.value.expected, raised.value.actual) == ("session-s1", 0, 1)


async def test_wrong_expected_version_raises_with_expected_and_actual(log: EventLog) -> None:
    await log.append("session-s1", [said(), said()], None)
    for wrong in (1, 3):
        with pytest.raises(ConcurrencyError) as raised:
            await log.append("session-s1", [said()], wrong)
        assert (raised.value.expected, raised.value.actual) == (wrong, 2)
    assert await log.stream_version("session-s1") == 2


async def test_none_expected_version_appends_at_the_end_without_check(log: EventLog) -> None:
    await log.append("session-s1", [said()], None)
    recorded = await log.append("session-s1", [said()], None)
    assert recorded[0].version == 2


async def test_refused_batch_writes_none_of_its_events(log: EventLog) -> None:
    await log.append("session-s1", [said("kept")], 0)
    with pytest.raises(ConcurrencyError):
        await log.append("session-s1", [said("x"), said("y"), said("z")], 0)
    assert texts(await log.read_all()) == ["kept"]


async def test_retry_with_the_same_event_ids_returns_the_recorded_events_and_writes_nothing(log: EventLog) -> None:
    batch = [said("a"), said("b")]
    first = await log.append("session-s1", batch, 0)
    await log.append("session-s1", [said("c")], 2)
    retried = await log.append("session-s1", batch, 0)  # its expected version is stale by now
    assert retried == first
    assert texts(await log.read_all()) == ["a", "b", "c"]


async def test_batch_with_only_some_ids_recorded_is_refused_and_writes_nothing(log: EventLog) -> None:
    old = said("old")
    await log.append("session-s1", [old], 0)
    with pytest.raises(DuplicateEventError) as raised:
        await log.append("session-s1", [old, said("new")], 1)
    assert raised.value.event_ids == [old.event_id]
    assert isinstance(raised.value, EventLogError)
    assert texts(await log.read_all()) == ["old"]


async def test_ids_recorded_on_another_stream_are_refused(log: EventLog) -> None:
    event = said()
    await log.append("session-s1", [event], 0)
    with pytest.raises(DuplicateEventError):
        await log.append("session-s2", [event], 0)


async def test_batch_repeating_an_event_id_is_refused(log: EventLog) -> None:
    event = said()
    with pytest.raises(DuplicateEventError):
        await log.append("session-s1", [event, event], 0)
    assert await log.last_position() == 0


async def test_event_ids_must_be_uuids_and_are_stored_canonically(log: EventLog) -> None:
    with pytest.raises(EventLogError):
        await log.append("session-s1", [NewEvent(event=said().event, session_id="s1", event_id="nope")], 0)
    upper = str(uuid.uuid4()).upper()
    event = NewEvent(event=said().event, session_id="s1", event_id=upper)
    [recorded] = await log.append("session-s1", [event], 0)
    assert recorded.event_id == upper.lower()
    assert await log.append("session-s1", [event], 0) == [recorded]


async def test_empty_append_returns_nothing_and_writes_nothing(log: EventLog) -> None:
    assert await log.append("session-s1", [], 5) == []
    assert await log.last_position() == 0


async def test_read_stream_after_a_version_with_a_limit(log: EventLog) -> None:
    await log.append("session-s1", [said(str(i)) for i in range(5)], 0)
    await log.append("other", [said("x")], 0)
    assert texts(await log.read_stream("session-s1", after_version=2)) == ["2", "3", "4"]
    assert texts(await log.read_stream("session-s1", after_version=1, limit=2)) == ["1", "2"]
    assert await log.read_stream("missing") == []


async def test_read_session_gathers_its_streams_in_position_order(log: EventLog) -> None:
    await log.append("session-s1", [said("1")], 0)
    await log.append("turn-t1", [said("2"), said("3")], 0)
    await log.append("session-s2", [said("other", session_id="s2")], 0)
    await log.append("session-s1", [said("4")], 1)
    recorded = await log.read_session("s1")
    assert texts(recorded) == ["1", "2", "3", "4"]
    assert texts(await log.read_session("s1", after=recorded[1].position, limit=1)) == ["3"]


async def test_read_all_is_in_position_order_after_a_position(log: EventLog) -> None:
    for i in range(4):
        await log.append(f"stream-{i}", [said(str(i))], 0)
    everything = await log.read_all()
    assert texts(everything) == ["0", "1", "2", "3"]
    assert [r.position for r in everything] == sorted(r.position for r in everything)
    assert texts(await log.read_all(after=everything[0].position, limit=2)) == ["1", "2"]
    assert await log.last_position() == everything[-1].position


async def test_empty_log_has_position_and_versions_zero(log: EventLog) -> None:
    assert await log.last_position() == 0
    assert await log.stream_version("session-s1") == 0
    assert await log.read_all() == []


async def test_iterators_page_through_everything_in_order(log: EventLog) -> None:
    for start in range(0, 60, 20):
        await log.append("session-s1", [said(str(i)) for i in range(start, start + 20)], start)
        await log.append(f"turn-{start}", [said("t")], 0)
    streamed = [r async for r in log.iter_stream("session-s1")]
    assert texts(streamed) == [str(i) for i in range(60)]
    assert texts([r async for r in log.iter_stream("session-s1", after_version=55)]) == ["55", "56", "57", "58", "59"]
    session = [r async for r in log.iter_session("s1")]
    assert len(session) == 63
    assert [r.position for r in session] == sorted(r.position for r in session)
    assert len([r async for r in log.iter_session("s1", after=session[-4].position)]) == 3


async def test_iterators_hold_one_page_at_a_time(engine: AsyncEngine) -> None:
    """Events appended after iteration started still show up: each page is a new read."""
    log = EventLog(engine, page_size=10)
    try:
        await log.append("session-s1", [said(str(i)) for i in range(10)], 0)
        seen = []
        async for recorded in log.iter_stream("session-s1"):
            seen.append(recorded.version)
            if recorded.version == 1:
                await log.append("session-s1", [said("late")], 10)
        assert seen == list(range(1, 12))
    finally:
        await log.close()


async def test_iterating_a_long_stream_holds_one_page_in_memory(engine: AsyncEngine) -> None:
    """Read as one list, 10k events peak at ~14 MB; paged by 200 they stay far below that."""
    log = EventLog(engine, page_size=200)
    try:
        for start in range(0, 10_000, 2_000):
            await log.append("long", [said("x" * 100) for _ in range(2_000)], start)
        tracemalloc.start()
        try:
            count = 0
            async for _ in log.iter_stream("long"):
                count += 1
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        await log.close()
    assert count == 10_000
    assert peak < 3_000_000


async def test_every_event_family_round_trips(log: EventLog) -> None:
    turn = TurnStarted(turn_id="t1", user_message_id="m1", agent_name="a", model="offline")
    [recorded] = await log.append("turn-t1", [NewEvent(event=turn, session_id="s1")], 0)
    assert recorded.event == turn
    assert (await log.read_stream("turn-t1")) == [recorded]


async def test_append_after_close_is_refused_and_close_finishes_queued_appends(engine: AsyncEngine) -> None:
    log = EventLog(engine)
    pending = [asyncio.create_task(log.append(f"s-{i}", [said()], 0)) for i in range(20)]
    await asyncio.sleep(0)
    await log.close()
    assert [len(recorded) for recorded in await asyncio.gather(*pending)] == [1] * 20
    with pytest.raises(EventLogClosedError):
        await log.append("late", [said()], 0)


async def test_a_row_of_an_unknown_type_is_skipped_by_reads_not_raised(log: EventLog, engine: AsyncEngine) -> None:
    """What a newer worker wrote is skipped and counted (tests/test_rolling_upgrade.py has the rest)."""
    conn = await asyncpg.connect(asyncpg_dsn(engine.url))
    try:
        await conn.execute(
            "INSERT INTO events (stream, version, session_id, type, schema, data, meta, event_id)"
            " VALUES ('x', 1, 's1', 'nope', 1, '{\"type\": \"nope\"}', '{}', $1)",
            uuid.uuid4(),
        )
    finally:
        await conn.close()
    assert await log.read_all() == []
    assert log.skipped.counts == {("nope", 1): 1}
