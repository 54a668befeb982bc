"""The projector and the read models: sessions and messages from the log, checkpoints, rebuild."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from projections import (
    Checkpoints,
    EventLog,
    MessageView,
    NewEvent,
    Projector,
    ReadModels,
    SessionView,
    create_engine,
)
from projections.tables import rm_messages, rm_sessions
from schemas.events import AssistantMessage, SessionClosed, SessionCreated, TurnStarted, UserMessage
from tests.conftest import outage


@pytest.fixture
async def log(engine: AsyncEngine) -> AsyncIterator[EventLog]:
    log = EventLog(engine, page_size=4)
    yield log
    await log.close()


@pytest.fixture
def views(engine: AsyncEngine) -> ReadModels:
    return ReadModels(engine)


@pytest.fixture
async def running(engine: AsyncEngine, log: EventLog) -> AsyncIterator[Projector]:
    projector = Projector(engine, log, poll_interval=0.2, retry_interval=0.05)
    task = asyncio.create_task(projector.run())
    yield projector
    task.cancel()
    await asyncio.wait([task])


async def conversation(log: EventLog, sid: str, *, turns: int = 2, close: bool = False) -> None:
    """Append a session's creation, then (in a later transaction) its messages and a turn event."""
    stream = f"session-{sid}"
    created = SessionCreated(session_id=sid, agent_name="helper", metadata={"lang": "en"})
    await log.append(stream, [NewEvent(event=created, session_id=sid)], 0)
    messages = []
    for i in range(turns):
        asked = UserMessage(message_id=f"{sid}-u{i}", content=f"q{i}", idempotency_key=uuid.uuid4().hex)
        answered = AssistantMessage(message_id=f"{sid}-a{i}", content=f"a{i}", agent_name="helper")
        messages += [NewEvent(event=asked, session_id=sid), NewEvent(event=answered, session_id=sid)]
    await log.append(stream, messages, None)
    turn = TurnStarted(turn_id="t", user_message_id=f"{sid}-u0", agent_name="helper", model="offline")
    await log.append(f"turn-{sid}", [NewEvent(event=turn, session_id=sid)], None)
    if close:
        await log.append(stream, [NewEvent(event=SessionClosed(), session_id=sid)], None)


async def tables(engine: AsyncEngine) -> tuple[list, list]:  # type: ignore[type-arg]
    async with engine.connect() as conn:
        sessions = (await conn.execute(select(rm_sessions).order_by(rm_sessions.c.session_id))).all()
        messages = (await conn.execute(select(rm_messages).order_by(rm_messages.c.position))).all()
    return sessions, messages


async def test_sessions_and_messages_appear_and_the_checkpoint_reaches_the_log_end(
    engine: AsyncEngine, log: EventLog, views: ReadModels, running: Projector
) -> None:
    await conversation(log, "s1", turns=3)
    await conversation(log, "s2", turns=1, close=True)
    assert await views.wait_caught_up(log)
    s1, s2 = await views.list_sessions()
    assert (s1.session_id, s1.agent_name, s1.status, s1.metadata) == ("s1", "helper", "active", {"lang": "en"})
    assert s2.status == "closed"
    assert s1.updated_at > s1.created_at
    messages = await views.list_messages("s1")
    first_turn = [(m.role, m.content, m.agent_name) for m in messages[:2]]
    assert first_turn == [("user", "q0", None), ("assistant", "a0", "helper")]
    assert len(messages) == 6 and all(isinstance(m, MessageView) and m.tool_call_id is None for m in messages)
    assert await Checkpoints(engine).get("read_models") == await log.last_position()


async def test_views_have_the_rest_shapes(log: EventLog, views: ReadModels, running: Projector) -> None:
    await conversation(log, "s1", turns=1)
    assert await views.wait_caught_up(log)
    session = await views.get_session("s1")
    assert isinstance(session, SessionView)
    recorded = await log.read_stream("session-s1")
    assert session.created_at == recorded[0].recorded_at.isoformat()
    assert session.updated_at == recorded[-1].recorded_at.isoformat()
    assert await views.get_session("missing") is None
    assert await views.list_messages("missing") == []


async def test_messages_page_with_limit_and_offset_oldest_first(
    log: EventLog, views: ReadModels, running: Projector
) -> None:
    await conversation(log, "s1", turns=5)
    assert await views.wait_caught_up(log)
    page = await views.list_messages("s1", limit=3, offset=2)
    assert [m.message_id for m in page] == ["s1-u1", "s1-a1", "s1-u2"]
    assert len(await views.list_messages("s1", offset=8)) == 2


async def test_wait_caught_up_times_out_without_a_projector(log: EventLog, views: ReadModels) -> None:
    assert await views.wait_caught_up(log, timeout=0.1)  # an empty log is always caught up
    await conversation(log, "s1")
    assert not await views.wait_caught_up(log, timeout=0.2)


async def test_a_stopped_projector_resumes_from_its_checkpoint_without_duplicates(
    engine: AsyncEngine, log: EventLog, views: ReadModels
) -> None:
    projector = Projector(engine, log, poll_interval=0.2)
    for sid in ("s1", "s2"):
        await conversation(log, sid)
        task = asyncio.create_task(projector.run())
        assert await views.wait_caught_up(log)
        task.cancel()
        await asyncio.wait([task])
    assert [len(await views.list_messages(sid)) for sid in ("s1", "s2")] == [4, 4]


async def test_rebuild_gives_identical_tables(engine: AsyncEngine, log: EventLog, views: ReadModels) -> None:
    for i in range(5):
        await conversation(log, f"s{i}", turns=i, close=i % 2 == 0)
    projector = Projector(engine, log)
    await projector.rebuild()
    before = await tables(engine)
    assert len(before[0]) == 5 and len(before[1]) == 20
    await projector.rebuild()
    assert await tables(engine) == before


async def test_rebuild_while_a_projector_runs_is_done_by_that_projector(
    engine: AsyncEngine, log: EventLog, views: ReadModels, running: Projector
) -> None:
    for i in range(3):
        await conversation(log, f"s{i}", turns=3)
    assert await views.wait_caught_up(log)
    before = await tables(engine)
    await asyncio.wait_for(Projector(engine, log, retry_interval=0.05).rebuild(), timeout=10)
    assert await tables(engine) == before


async def test_only_one_projector_is_active_and_another_takes_over_when_it_stops(
    engine: AsyncEngine, log: EventLog, views: ReadModels, fresh_database_url: str
) -> None:
    other_engine = create_engine(fresh_database_url)
    projectors = [Projector(e, log, poll_interval=0.1, retry_interval=0.05) for e in (engine, other_engine)]
    first = asyncio.create_task(projectors[0].run())
    try:
        await conversation(log, "s1")
        assert await views.wait_caught_up(log)
        second = asyncio.create_task(projectors[1].run())
        await asyncio.sleep(0.2)
        assert await eventually(lambda: _projector_locks(engine), 1)
        first.cancel()
        await asyncio.wait([first])
        await conversation(log, "s2")
        assert await views.wait_caught_up(log, timeout=5)
        assert [s.session_id for s in await views.list_sessions()] == ["s1", "s2"]
        second.cancel()
        await asyncio.wait([second])
        assert await eventually(lambda: _projector_locks(engine), 0)
    finally:
        first.cancel()
        await other_engine.dispose()


async def _projector_locks(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        query = text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return int(await conn.scalar(query))


async def eventually(read, wanted: int, timeout: float = 3.0) -> bool:  # type: ignore[no-untyped-def]
    """Whether `read()` returns `wanted` within `timeout` (a closed backend releases its locks a moment later)."""
    try:
        async with asyncio.timeout(timeout):
            while await read() != wanted:
                await asyncio.sleep(0.02)
    except TimeoutError:
        return False
    return True


async def test_the_projector_carries_on_after_losing_the_database(
    log: EventLog, views: ReadModels, running: Projector, postgres_url: str, fresh_database_url: str
) -> None:
    await conversation(log, "s1")
    assert await views.wait_caught_up(log)
    with capture_logs() as logs:
        async with outage(postgres_url, fresh_database_url):
            await asyncio.sleep(0.5)
        await conversation(log, "s2")
        assert await views.wait_caught_up(log, timeout=5)
    assert [s.session_id for s in await views.list_sessions()] == ["s1", "s2"]
    assert any(entry["event"] == "projector_database_failed" for entry in logs)
