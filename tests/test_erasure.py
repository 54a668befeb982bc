"""Erasure and retention on a real PostgreSQL: a session's events become one tombstone that every view respects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from projections import ConcurrencyError, EventLog, NewEvent, Projector, ReadModels, _locks
from projections.erasure import erase_session
from projections.replay import load_board, load_team, session_outline
from projections.retention import RETENTION, sweep
from projections.tables import events, rm_sessions, rm_usage
from schemas import tag_of
from schemas.events import BoardStarted, ModelCalled, SessionErased, TeamFormed, ToolCalled, UserMessage
from tests.test_readmodels import conversation, tables

UPLOAD = "0123456789abcdef0123456789abcdef.txt"


@pytest.fixture
async def log(engine: AsyncEngine) -> AsyncIterator[EventLog]:
    log = EventLog(engine, page_size=4)
    yield log
    await log.close()


async def stored_types(engine: AsyncEngine, session_id: str) -> list[str]:
    async with engine.connect() as conn:
        query = select(events.c.type).where(events.c.session_id == session_id).order_by(events.c.position)
        return list((await conn.execute(query)).scalars())


async def test_an_erased_session_is_one_tombstone_in_the_log_and_gone_from_every_view(
    engine: AsyncEngine, log: EventLog
) -> None:
    await conversation(log, "gone", turns=2)
    await conversation(log, "kept", turns=1)
    named = UserMessage(message_id="gone-u9", content=f"what does {UPLOAD} say?", idempotency_key="k9")
    called = ToolCalled(turn_id="t", step=1, call_id="c1", tool="read_upload", arguments=f'{{"filename": "{UPLOAD}"}}')
    used = ModelCalled(turn_id="t", step=1, tier="main", prompt_tokens=5, completion_tokens=7)
    await log.append("session-gone", [NewEvent(event=named, session_id="gone")], None)
    await log.append("turn-gone", [NewEvent(event=e, session_id="gone") for e in (called, used)], None)
    board = BoardStarted(board_id="b1", topic="the secret plan", experts=[], max_rounds=1)
    team = TeamFormed(team_id="t1", task="the secret task", lead_expert="lead", experts=[], plan_phases=[])
    await log.append("board-b1", [NewEvent(event=board, session_id="gone")], 0)
    await log.append("team-t1", [NewEvent(event=team, session_id="gone")], 0)
    projector = Projector(engine, log)
    await projector.rebuild()
    kept_before = await ReadModels(engine).list_messages("kept")

    erased = await erase_session(engine, "gone", by="ada")

    assert erased is not None
    assert erased.tombstone == SessionErased(erased_by="ada", reason="erased", events_erased=11, uploads=[UPLOAD])
    # One tombstone for the session, and one at the next version of each of its other streams, drawn in order.
    left = [(r.stream, r.version, tag_of(type(r.event))) async for r in log.iter_session("gone")]
    assert left == [
        ("session-gone", 7, "session_erased"),
        ("board-b1", 2, "stream_erased"),
        ("team-t1", 2, "stream_erased"),
        ("turn-gone", 4, "stream_erased"),
    ]
    assert erased.position == await log.last_position() - 3
    assert await load_board(log, "b1") is None and await load_team(log, "t1") is None  # their streams went too
    views = ReadModels(engine)
    assert await views.get_session("gone") is None and await views.list_messages("gone") == []
    async with engine.connect() as conn:
        assert (await conn.execute(select(rm_usage).where(rm_usage.c.session_id == "gone"))).all() == []
    assert await views.list_messages("kept") == kept_before
    # The projector shows the same after a rebuild from the log: the tombstone is applied like any event.
    after = await tables(engine)
    await projector.rebuild()
    assert await tables(engine) == after
    # Replay sees the erasure, who did it, and nothing of what was erased.
    outline = await session_outline(log, "gone")
    assert (outline.turns, outline.boards, outline.teams) == ([], [], [])
    [erasure] = outline.erasures
    assert (erasure.erased_by, erasure.reason, erasure.events_erased) == ("ada", "erased", 11)


async def test_a_writer_still_holding_a_stream_of_an_erased_session_fails_its_version_check(
    engine: AsyncEngine, log: EventLog
) -> None:
    """The session's writer, and a turn's (a board's, a team's) that was still running."""
    await conversation(log, "s1", turns=1)
    versions = {stream: len(await log.read_stream(stream)) for stream in ("session-s1", "turn-s1")}
    assert await erase_session(engine, "s1", by="ada") is not None
    late = UserMessage(message_id="late", content="still here?", idempotency_key="late")
    for stream, version in versions.items():
        with pytest.raises(ConcurrencyError):
            await log.append(stream, [NewEvent(event=late, session_id="s1")], version)


async def test_erasing_twice_records_one_tombstone_and_an_unknown_session_has_nothing_to_erase(
    engine: AsyncEngine, log: EventLog
) -> None:
    await conversation(log, "s1", turns=1)
    assert await erase_session(engine, "s1", by="ada") is not None
    assert await erase_session(engine, "s1", by="bob") is None
    assert await erase_session(engine, "never", by="ada") is None
    assert await stored_types(engine, "s1") == ["session_erased", "stream_erased"]


async def test_retention_expires_an_old_closed_session_and_keeps_an_open_one_and_a_recently_closed_one(
    engine: AsyncEngine, log: EventLog
) -> None:
    await conversation(log, "old", turns=1, close=True)
    await conversation(log, "open", turns=1)
    await conversation(log, "recent", turns=1, close=True)
    await Projector(engine, log).rebuild()
    views = ReadModels(engine)
    async with engine.connect() as conn:
        closed = dict((await conn.execute(select(rm_sessions.c.session_id, rm_sessions.c.updated_at))).all())
    assert closed["old"] < closed["recent"]
    # 30 days after a moment between the two closes: "old" was closed more than 30 days before, "recent" not.
    now = closed["old"] + (closed["recent"] - closed["old"]) / 2 + timedelta(days=30)

    expired = await sweep(engine, 30, now=now)

    assert expired is not None and [done.session_id for done in expired] == ["old"]
    assert expired[0].tombstone.erased_by == RETENTION and expired[0].tombstone.reason == "expired"
    assert await stored_types(engine, "old") == ["session_erased", "stream_erased"]
    assert [s.session_id for s in await views.list_sessions()] == ["open", "recent"]
    assert await sweep(engine, 30, now=now) == []  # nothing more to expire


async def test_one_retention_sweep_runs_at_a_time(engine: AsyncEngine, log: EventLog) -> None:
    """A second sweep while one holds the lock does nothing (None), so two workers never sweep at once."""
    await conversation(log, "old", turns=1, close=True)
    await Projector(engine, log).rebuild()
    later = datetime.now(UTC) + timedelta(days=31)
    async with engine.connect() as conn, conn.begin():
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _locks.RETENTION})
        assert await sweep(engine, 30, now=later) is None
    assert [done.session_id for done in await sweep(engine, 30, now=later) or []] == ["old"]
