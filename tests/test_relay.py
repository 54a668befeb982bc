"""The log is the outbox: whatever is committed reaches live subscribers, in order, even across a relay restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from actors.relay import Relay
from bus import Bus
from projections import Checkpoints, EventLog, NewEvent, create_engine, migrate
from schemas import FeedItem, Layout, RecordedEvent, Subjects, codec, partition_of
from schemas.events import UserMessage


@pytest.fixture
async def parts(
    nats_url: str, fresh_database_url: str, subject_prefix: str
) -> AsyncIterator[tuple[EventLog, Checkpoints, Bus]]:
    engine = create_engine(fresh_database_url)
    await migrate(engine)
    bus = await Bus.connect(nats_url, name="relay-test", subjects=Subjects(subject_prefix))
    log = EventLog(engine)
    yield log, Checkpoints(engine), bus
    await log.close()
    await bus.close()
    await engine.dispose()


def message(i: int) -> NewEvent:
    return NewEvent(event=UserMessage(message_id=f"m{i}", content=str(i), idempotency_key=f"k{i}"), session_id="s1")


async def collect(feed: AsyncIterator[FeedItem], count: int) -> list[int]:
    positions: list[int] = []
    async with asyncio.timeout(10):
        async for item in feed:
            assert isinstance(item, RecordedEvent)
            positions.append(item.position)
            if len(positions) == count:
                return positions
    return positions


async def test_events_committed_while_no_relay_ran_are_published_when_it_starts(parts) -> None:
    log, checkpoints, bus = parts
    committed = await log.append("session-s1", [message(i) for i in range(3)], expected_version=0)
    feed = await bus.subscribe(bus.subjects.session_evt("s1"), codec.feed)
    relay = asyncio.create_task(Relay(log, checkpoints, bus).run())
    try:
        assert await collect(feed.__aiter__(), 3) == [e.position for e in committed]
    finally:
        relay.cancel()
        await asyncio.gather(relay, return_exceptions=True)
        await feed.close()


async def test_a_restarted_relay_resumes_from_its_checkpoint_without_skipping(parts) -> None:
    log, checkpoints, bus = parts
    feed = await bus.subscribe(bus.subjects.session_evt("s1"), codec.feed)
    first = await log.append("session-s1", [message(0)], expected_version=0)
    relay = asyncio.create_task(Relay(log, checkpoints, bus).run())
    seen = await collect(feed.__aiter__(), 1)
    relay.cancel()
    await asyncio.gather(relay, return_exceptions=True)
    assert await checkpoints.get("nats_relay") == first[0].position

    later = await log.append("session-s1", [message(1), message(2)], expected_version=1)
    relay = asyncio.create_task(Relay(log, checkpoints, bus).run())
    try:
        seen += await collect(feed.__aiter__(), 2)
    finally:
        relay.cancel()
        await asyncio.gather(relay, return_exceptions=True)
        await feed.close()
    assert seen == [first[0].position, *(e.position for e in later)]


async def test_a_relay_publishes_only_the_sessions_of_the_partitions_it_owns(parts) -> None:
    log, checkpoints, bus = parts
    sessions = [f"s{i}" for i in range(12)]
    mine = {partition_of(session_id, 4) for session_id in sessions[:3]}
    for session_id in sessions:
        await log.append(f"session-{session_id}", [say(session_id)], expected_version=0)
    feed = await bus.subscribe(f"{bus.subjects.prefix}.session.*.evt", codec.feed)
    relay = Relay(log, checkpoints, bus)
    relay.own(mine, of=Layout(4))
    running = asyncio.create_task(relay.run())
    try:
        expected = sorted(s for s in sessions if partition_of(s, 4) in mine)
        seen: list[str] = []
        async with asyncio.timeout(10):
            async for item in feed:
                assert isinstance(item, RecordedEvent)
                seen.append(item.session_id)
                if len(seen) == len(expected):
                    break
        assert sorted(seen) == expected
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await feed.close()
    # One checkpoint per owned partition, at the head of the log.
    head = (await log.read_all(0, 100))[-1].position
    assert {p: await checkpoints.get(f"nats_relay.p{p}") for p in mine} == {p: head for p in mine}


async def test_a_relay_checkpoint_never_moves_backwards(parts) -> None:
    _, checkpoints, _ = parts
    await checkpoints.advance("nats_relay.p1", 50)
    await checkpoints.advance("nats_relay.p1", 20)  # a stale relay after its lease was taken over
    assert await checkpoints.get("nats_relay.p1") == 50


def say(session_id: str) -> NewEvent:
    return NewEvent(
        event=UserMessage(message_id=session_id, content="hi", idempotency_key=session_id), session_id=session_id
    )
