"""The log is the outbox: whatever is committed reaches live subscribers, in order, even across a relay restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from actors.relay import Relay
from bus import Bus
from projections import Checkpoints, EventLog, NewEvent, create_engine, migrate
from schemas import FeedItem, RecordedEvent, Subjects, codec
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
