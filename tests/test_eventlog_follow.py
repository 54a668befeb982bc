"""`EventLog.follow`: woken by NOTIFY, rescued by its timer, survives a dropped LISTEN connection."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from projections import EventLog, NewEvent, create_engine
from projections._wakeup import APPLICATION_NAME
from projections.database import asyncpg_dsn
from schemas.envelope import RecordedEvent
from schemas.events import UserMessage
from tests.conftest import outage

NEVER = 3600.0  # a poll interval that never fires during a test


@pytest.fixture
async def log(engine: AsyncEngine) -> AsyncIterator[EventLog]:
    log = EventLog(engine, page_size=3)
    yield log
    await log.close()


@pytest.fixture
async def admin(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(asyncpg_dsn(engine.url))
    yield conn
    await conn.close()


def said(text: str = "hi") -> NewEvent:
    return NewEvent(
        event=UserMessage(message_id=uuid.uuid4().hex, content=text, idempotency_key=uuid.uuid4().hex),
        session_id="s1",
    )


async def listeners(admin: asyncpg.Connection) -> list[int]:
    rows = await admin.fetch(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
        APPLICATION_NAME,
    )
    return [row["pid"] for row in rows]


async def eventually(check, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not (result := await check()):
            await asyncio.sleep(0.02)
    return result


async def test_follow_yields_past_events_in_order_then_new_ones_on_notify(log: EventLog) -> None:
    await log.append("a", [said(str(i)) for i in range(7)], 0)  # more than one page
    follower = log.follow(0, poll_interval=NEVER)
    try:
        past = [await anext(follower) for _ in range(7)]
        assert [r.event.content for r in past] == [str(i) for i in range(7)]
        await log.append("b", [said("new")], 0)
        new = await asyncio.wait_for(anext(follower), timeout=3)
        assert new.event.content == "new"
        assert new.position > past[-1].position
    finally:
        await follower.aclose()


async def test_follow_starts_after_the_given_position(log: EventLog) -> None:
    recorded = await log.append("a", [said(str(i)) for i in range(4)], 0)
    follower = log.follow(recorded[1].position, poll_interval=NEVER)
    try:
        assert (await anext(follower)).event.content == "2"
    finally:
        await follower.aclose()


async def test_follow_finds_events_that_sent_no_notification_on_its_timer(
    log: EventLog, admin: asyncpg.Connection
) -> None:
    follower = log.follow(0, poll_interval=0.2)
    first = asyncio.ensure_future(anext(follower))
    try:
        await eventually(lambda: listeners(admin))
        await asyncio.sleep(0.1)  # let the follower go back to sleep after the listener's catch-up read
        await admin.execute(  # a writer that does not NOTIFY
            "INSERT INTO events (stream, version, session_id, type, schema, data, meta, event_id)"
            " VALUES ('quiet', 1, 's1', 'user_message', 1, $1, '{}', $2)",
            '{"type": "user_message", "message_id": "m", "content": "quiet", "idempotency_key": "k"}',
            uuid.uuid4(),
        )
        recorded: RecordedEvent = await asyncio.wait_for(first, timeout=3)
        assert recorded.event.content == "quiet"
    finally:
        first.cancel()
        await asyncio.wait([first])
        await follower.aclose()


async def test_follow_reestablishes_a_dropped_listen_connection(log: EventLog, admin: asyncpg.Connection) -> None:
    follower = log.follow(0, poll_interval=NEVER)
    try:
        await log.append("a", [said("before")], 0)
        assert (await anext(follower)).event.content == "before"
        [old] = await eventually(lambda: listeners(admin))
        await admin.execute("SELECT pg_terminate_backend($1)", old)
        await eventually(lambda: _replaced(admin, old))
        await log.append("a", [said("after")], 1)
        assert (await asyncio.wait_for(anext(follower), timeout=3)).event.content == "after"
    finally:
        await follower.aclose()


async def _replaced(admin: asyncpg.Connection, old: int) -> bool:
    pids = await listeners(admin)
    return bool(pids) and old not in pids


async def test_closing_or_cancelling_a_follower_releases_its_connection(
    log: EventLog, admin: asyncpg.Connection
) -> None:
    await log.append("a", [said()], 0)
    follower = log.follow(0, poll_interval=NEVER)
    await anext(follower)
    await eventually(lambda: listeners(admin))
    await follower.aclose()
    await eventually(lambda: _none_left(admin))

    async def consume() -> None:
        async for _ in log.follow(0, poll_interval=NEVER):
            pass

    task = asyncio.create_task(consume())
    await eventually(lambda: listeners(admin))
    task.cancel()
    await asyncio.wait([task])
    await eventually(lambda: _none_left(admin))


async def _none_left(admin: asyncpg.Connection) -> bool:
    return not await listeners(admin)


async def test_a_follower_on_another_engine_sees_appends_of_this_one(log: EventLog, fresh_database_url: str) -> None:
    engine = create_engine(fresh_database_url)
    other = EventLog(engine)
    follower = other.follow(0, poll_interval=NEVER)
    pending = asyncio.ensure_future(anext(follower))
    try:
        await asyncio.sleep(0.2)
        await log.append("a", [said("cross")], 0)
        assert (await asyncio.wait_for(pending, timeout=3)).event.content == "cross"
    finally:
        pending.cancel()
        await asyncio.wait([pending])
        await follower.aclose()
        await other.close()
        await engine.dispose()


async def test_follow_keeps_going_through_a_database_outage(
    log: EventLog, postgres_url: str, fresh_database_url: str
) -> None:
    follower = log.follow(0, poll_interval=0.1)
    pending: asyncio.Future[RecordedEvent] | None = None
    try:
        await log.append("a", [said("before")], 0)
        assert (await anext(follower)).event.content == "before"
        with capture_logs() as logs:
            pending = asyncio.ensure_future(anext(follower))
            async with outage(postgres_url, fresh_database_url):
                await asyncio.sleep(1.0)
            await log.append("a", [said("after")], 1)
            assert (await asyncio.wait_for(pending, timeout=5)).event.content == "after"
        assert any(entry["event"] == "follow_read_failed" for entry in logs)
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.wait([pending])
        await follower.aclose()
