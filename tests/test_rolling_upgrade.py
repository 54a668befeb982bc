"""Rolling upgrades: today's code on a log that a newer worker writes to as well.

The newer worker is played by this test: it appends, through the real event
log, events of a type today's code does not know (`SessionPinned`, a test-only
Struct), and rows of a known type at a schema today's code cannot decode.
Every reader of today's code goes past them, logs them once per type and counts
them; an event stored in an older shape is read through its upcaster.
"""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import asyncpg
import httpx
import msgspec
import nats
import pytest
import websockets
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from actors.relay import Relay
from bus import Bus
from projections import Checkpoints, EventLog, NewEvent, Projector, ReadModels, SkippedCount, SkippedEvent
from projections.database import asyncpg_dsn
from projections.tables import events, rm_messages, rm_sessions, rm_skipped_events
from schemas import CommandRefused, DecodeError, EventOmitted, RecordedEvent, Subjects, codec
from schemas._base import Event
from schemas.events import AssistantMessage, SessionCreated, SessionRenamed, UserMessage
from schemas.history import EventsPage, ReadEvents, events_replies
from schemas.upcasters import UPCASTERS, decode_event, schema_of
from tests.system import System, receive_until


class SessionPinned(Event, frozen=True, kw_only=True):
    """An event type of a newer worker's code: today's code has never heard of it."""

    pinned_by: str


def pinned(session_id: str) -> NewEvent:
    return NewEvent(event=SessionPinned(pinned_by="ops"), session_id=session_id)  # type: ignore[arg-type]


def said(session_id: str, text: str) -> NewEvent:
    asked = UserMessage(message_id=uuid.uuid4().hex, content=text, idempotency_key=uuid.uuid4().hex)
    return NewEvent(event=asked, session_id=session_id)


async def insert_row(engine: AsyncEngine, stream: str, session_id: str, type_: str, schema: int, data: dict) -> None:
    """Write a row as a worker of other code would, at the stream's next version."""
    conn = await asyncpg.connect(asyncpg_dsn(engine.url))
    try:
        await conn.execute(
            "INSERT INTO events (stream, version, session_id, type, schema, data, meta, event_id)"
            " SELECT $1, coalesce(max(version), 0) + 1, $2, $3, $4, $5, '{}', $6 FROM events WHERE stream = $1",
            stream,
            session_id,
            type_,
            schema,
            json.dumps(data),
            uuid.uuid4(),
        )
    finally:
        await conn.close()


@pytest.fixture
async def log(engine: AsyncEngine) -> AsyncIterator[EventLog]:
    log = EventLog(engine, page_size=2)
    yield log
    await log.close()


# Reads of the log


async def test_every_read_goes_past_a_newer_workers_events_and_logs_each_type_once(log: EventLog) -> None:
    """3 unknown events between 2 known ones: reads yield the 2, `replay_stream` the 5, one log line, a count of 3."""
    with capture_logs() as logs:
        first = await log.append("session-s1", [said("s1", "a"), pinned("s1"), pinned("s1")], 0)
        await log.append("session-s1", [pinned("s1"), said("s1", "b")], 3)
        known = [r for r in await log.read_all() if isinstance(r.event, UserMessage)]

        assert [r.version for r in known] == [1, 5]
        assert await log.read_stream("session-s1") == known
        assert [r async for r in log.iter_stream("session-s1")] == known
        assert [r async for r in log.iter_session("s1")] == known
        # A limit counts the events a reader gets: the page of 2 holds both, past the 3 skipped rows.
        assert await log.read_session("s1", limit=2) == known
        assert await log.read_session("s1", after=first[0].position, limit=1) == known[1:]
        replayed = [r async for r in log.replay_stream("session-s1")]

    assert [r.version for r in replayed] == [1, 2, 3, 4, 5]
    skipped = [r for r in replayed if isinstance(r, SkippedEvent)]
    assert [(s.version, s.type, s.schema, s.reason) for s in skipped] == [
        (v, "session_pinned", 1, "unknown_type") for v in (2, 3, 4)
    ]
    [line] = [entry for entry in logs if entry["event"] == "unknown_event_skipped"]
    assert (line["type"], line["schema"], line["position"], line["log_level"]) == ("session_pinned", 1, 2, "warning")
    assert log.skipped.counts[("session_pinned", 1)] >= 3


async def test_follow_hands_a_follower_what_it_cannot_read_so_its_checkpoint_moves_past_it(log: EventLog) -> None:
    appended = await log.append("session-s1", [said("s1", "a"), pinned("s1"), pinned("s1")], 0)
    seen: list[RecordedEvent | SkippedEvent] = []
    async with asyncio.timeout(5):
        async for item in log.follow(0, poll_interval=0.1):
            seen.append(item)
            if len(seen) == 3:
                break
    assert [item.position for item in seen] == [r.position for r in appended]
    assert [type(item) for item in seen] == [RecordedEvent, SkippedEvent, SkippedEvent]


# The projector


async def test_the_projector_goes_past_unknown_and_unreadable_events_moves_its_checkpoint_and_counts_them(
    engine: AsyncEngine, log: EventLog
) -> None:
    """Known events after them are projected; a rebuild gives the same tables and the same counts."""
    created = SessionCreated(session_id="s1", agent_name="helper", metadata={})
    await log.append("session-s1", [NewEvent(event=created, session_id="s1"), said("s1", "before")], 0)
    await log.append("pin-s1", [pinned("s1"), pinned("s1")], 0)
    # A newer schema of a known type that today's code cannot decode (the title became an object).
    await insert_row(
        engine, "session-s1", "s1", "session_renamed", 2, {"type": "session_renamed", "title": {"en": "x"}}
    )
    answer = AssistantMessage(message_id="a1", content="after", agent_name="helper")
    await log.append("session-s1", [NewEvent(event=answer, session_id="s1")], 3)
    head = await log.last_position()

    projector = Projector(engine, log, poll_interval=0.1, retry_interval=0.05)
    running = asyncio.create_task(projector.run())
    views = ReadModels(engine)
    try:
        assert await views.wait_caught_up(log, timeout=10)
    finally:
        running.cancel()
        await asyncio.wait([running])
    assert running.cancelled()  # it was running, not ended by the rows it could not read
    assert await views.checkpoint() == head
    assert [m.content for m in await views.list_messages("s1")] == ["before", "after"]
    expected = [
        SkippedCount(type="session_pinned", schema=1, events=2, first_position=3, last_position=4),
        SkippedCount(type="session_renamed", schema=2, events=1, first_position=5, last_position=5),
    ]
    assert await views.skipped_events() == expected

    before = await read_models(engine)
    rebuilt = await Projector(engine, log).rebuild()
    assert rebuilt.rows["rm_skipped_events"] == 2
    assert await read_models(engine) == before
    assert await views.skipped_events() == expected


async def read_models(engine: AsyncEngine) -> list[list[Any]]:
    async with engine.connect() as conn:
        return [
            [tuple(row) for row in (await conn.execute(select(table).order_by(*table.primary_key))).all()]
            for table in (rm_sessions, rm_messages, rm_skipped_events)
        ]


# The relay


async def test_the_relay_publishes_a_notice_in_place_of_an_event_it_cannot_read_and_goes_on(
    engine: AsyncEngine, log: EventLog, nats_url: str, subject_prefix: str
) -> None:
    bus = await Bus.connect(nats_url, name="upgrade-test", subjects=Subjects(subject_prefix))
    feed = await bus.subscribe(bus.subjects.session_evt("s1"), codec.feed)
    checkpoints = Checkpoints(engine)
    appended = await log.append("session-s1", [said("s1", "a"), pinned("s1"), said("s1", "b")], 0)
    relay = asyncio.create_task(Relay(log, checkpoints, bus).run())
    seen: list[object] = []
    try:
        async with asyncio.timeout(10):
            async for item in feed:
                seen.append(item)
                if len(seen) == 3:
                    break
        async with asyncio.timeout(10):
            while await checkpoints.get("nats_relay") < appended[-1].position:
                await asyncio.sleep(0.1)
    finally:
        relay.cancel()
        await asyncio.gather(relay, return_exceptions=True)
        await feed.close()
        await bus.close()
    assert [type(item) for item in seen] == [RecordedEvent, EventOmitted, RecordedEvent]
    notice = seen[1]
    assert isinstance(notice, EventOmitted)
    assert (notice.position, notice.event_type) == (appended[1].position, "session_pinned")


# Upcasters


def user_message_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A test-only older shape of `user_message`: `text` for `content`, and no idempotency key (its id served)."""
    old = dict(data)
    old["content"] = old.pop("text")
    old["idempotency_key"] = old["message_id"]
    return old


def session_titled_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A test-only tag replaced by a new one: `session_titled` (name) became `session_renamed` (title)."""
    return {"type": "session_renamed", "title": data["name"]}


@given(
    message_id=st.text(min_size=1, max_size=40),
    content=st.text(max_size=200),
    model=st.none() | st.text(max_size=20),
)
def test_an_old_shape_upcast_equals_the_event_in_the_current_shape(
    message_id: str, content: str, model: str | None
) -> None:
    old = {"type": "user_message", "message_id": message_id, "text": content, "model": model}
    with patch.dict(UPCASTERS, {("user_message", 1): user_message_v1}):
        upcast = decode_event("user_message", 1, msgspec.json.encode(old))
        # Data at the current schema is read as it is.
        current = UserMessage(message_id=message_id, content=content, idempotency_key=message_id, model=model)
        assert decode_event("user_message", 2, msgspec.json.encode(current)) == current
    assert upcast == current


@given(name=st.text(max_size=100))
def test_steps_chain_and_may_replace_a_tag(name: str) -> None:
    steps = {("session_titled", 1): session_titled_v1, ("session_renamed", 2): lambda data: data}
    with patch.dict(UPCASTERS, steps):
        assert schema_of("session_renamed") == 3 and schema_of("session_titled") == 2
        stored = msgspec.json.encode({"type": "session_titled", "name": name})
        assert decode_event("session_titled", 1, stored) == SessionRenamed(title=name)


def test_a_step_that_does_not_fit_the_stored_data_is_a_decode_error_not_a_crash() -> None:
    with patch.dict(UPCASTERS, {("user_message", 1): user_message_v1}), pytest.raises(DecodeError, match="upcasting"):
        decode_event("user_message", 1, b'{"type": "user_message", "message_id": "m"}')


async def test_the_log_writes_the_current_schema_and_reads_old_rows_through_their_step(
    engine: AsyncEngine, log: EventLog
) -> None:
    """With a step from schema 1, new rows carry 2; a row stored at 1 reads as today's event; one that fits no step is skipped."""
    with patch.dict(UPCASTERS, {("user_message", 1): user_message_v1}):
        old = {"type": "user_message", "message_id": "m1", "text": "hello"}
        await insert_row(engine, "session-s1", "s1", "user_message", 1, old)
        await insert_row(engine, "session-s1", "s1", "user_message", 1, {"type": "user_message", "message_id": "m2"})
        current = UserMessage(message_id="m3", content="now", idempotency_key="k3")
        await log.append("session-s1", [NewEvent(event=current, session_id="s1")], 2)
        read = await log.read_stream("session-s1")
    async with engine.connect() as conn:
        schemas = (await conn.execute(select(events.c.schema).order_by(events.c.position))).scalars().all()
    assert list(schemas) == [1, 1, 2]
    assert [r.event for r in read] == [UserMessage(message_id="m1", content="hello", idempotency_key="m1"), current]
    assert [r.schema for r in read] == [1, 2]
    assert log.skipped.counts == {("user_message", 1): 1}


# Today's `agentbus up` beside a newer worker


async def metric(system: System, line_start: str) -> int:
    async with httpx.AsyncClient(base_url=system.http_url, timeout=10) as client:
        text = (await client.get("/metrics")).text
    found = [line.split()[-1] for line in text.splitlines() if line.startswith(line_start)]
    return int(found[0]) if found else 0


async def ask(ws: websockets.ClientConnection, content: str) -> str:
    await ws.send(json.dumps({"type": "message", "content": content}))
    return (await receive_until(ws, "final_answer"))[-1]["content"]


async def test_a_session_a_newer_worker_wrote_to_goes_on_under_todays_worker(
    tmp_path: Path, system_env: dict[str, str], engine: AsyncEngine
) -> None:
    """Live (projector, relay, socket) and after a restart (actor reactivation, REST, history, replay): skipped and reported."""
    pinned_metric = 'agentbus_projector_skipped_events_total{type="session_pinned",schema="1"}'
    system = System(tmp_path / "data", system_env).start()
    newer = EventLog(engine)
    try:
        session_id = await system.create_session()
        async with websockets.connect(system.ws_base + session_id) as ws:
            await ws.recv()
            first = await ask(ws, "first")
            # A newer worker records an event of its own for the session, in a stream of its own.
            await newer.append(f"pin-{session_id}", [pinned(session_id)], 0)
            async with asyncio.timeout(15):
                while await metric(system, pinned_metric) != 1:
                    await asyncio.sleep(0.2)
            second = await ask(ws, "second")  # the relay and this socket went past it
        assert first.startswith('You said: "first"') and 'Before that you said: "first"' in second
        assert system.stop(signal.SIGINT) == 0

        # Meanwhile the newer worker owned the session and wrote into its stream.
        stream = f"session-{session_id}"
        await newer.append(stream, [pinned(session_id)], await newer.stream_version(stream))
        offset = system.log_path.stat().st_size
        system.start()
        async with websockets.connect(system.ws_base + session_id) as ws:
            await ws.recv()
            third = await ask(ws, "third")  # the session actor replays past it, and appends at the true version
        assert "That is message 3 of our conversation" in third and 'Before that you said: "second"' in third
        async with asyncio.timeout(15):
            while await metric(system, pinned_metric) != 2:
                await asyncio.sleep(0.2)

        messages = await system.messages(session_id)
        assert [(m["role"], m["content"]) for m in messages][::2] == [
            ("user", "first"),
            ("user", "second"),
            ("user", "third"),
        ]
        async with system.http() as client:
            rest = (await client.get(f"/sessions/{session_id}/events")).json()
        assert "session_pinned" not in {e["event"]["type"] for e in rest}
        versions = [e["version"] for e in rest if e["stream"] == stream]
        assert sorted(set(range(1, versions[-1] + 1)) - set(versions)) != []  # the pinned version is a gap
        assert await metric(system, 'agentbus_gateway_skipped_events_total{type="session_pinned",schema="1"}') >= 1

        bus = await Bus.connect(
            system.nats_url, name="upgrade-test", subjects=Subjects(system_env["AGENTBUS_SUBJECT_PREFIX"])
        )
        try:
            page = await bus.request(
                bus.subjects.session_events(session_id), ReadEvents(after=0, limit=100), events_replies
            )
        finally:
            await bus.close()
        assert isinstance(page, EventsPage) and not page.more
        assert [e.position for e in page.events] == [e["position"] for e in rest]

        replayed = await asyncio.to_thread(system.run_cli, "replay", "session", session_id)
        assert replayed.returncode == 0, replayed.stderr
        assert len(json.loads(replayed.stdout)["turns"]) == 3
        assert "unknown_event_skipped" in replayed.stderr + replayed.stdout

        output = system.log_path.read_bytes()[offset:].decode(errors="replace")
        assert "unknown_event_skipped" in output and "session_pinned" in output
        assert "background_task_crashed" not in output
    finally:
        await newer.close()
        if system.process is not None:
            assert system.stop() == 0


async def test_a_command_of_a_type_this_worker_does_not_know_is_refused_once_as_unknown_command(
    tmp_path: Path, system_env: dict[str, str]
) -> None:
    """A newer client's command: one `command_refused` with `unknown_command`, recorded, and not redelivered (3 s)."""
    system = System(tmp_path / "data", system_env).start()
    try:
        session_id = await system.create_session()
        bus = await Bus.connect(
            system.nats_url, name="upgrade-test", subjects=Subjects(system_env["AGENTBUS_SUBJECT_PREFIX"])
        )
        feed = await bus.subscribe(bus.subjects.session_evt(session_id), codec.feed)
        raw = await nats.connect(system.nats_url)
        refusals: list[CommandRefused] = []
        try:
            command = {"type": "pin_session", "idempotency_key": uuid.uuid4().hex}
            await raw.jetstream().publish(bus.subjects.session_cmd(session_id), json.dumps(command).encode())

            async def collect() -> None:
                async for item in feed:
                    if isinstance(item, CommandRefused):
                        refusals.append(item)

            with pytest.raises(TimeoutError):
                async with asyncio.timeout(3.0):
                    await collect()
        finally:
            await raw.close()
            await feed.close()
            await bus.close()
        assert [(r.code, r.message) for r in refusals] == [
            ("unknown_command", "invalid session command: unknown type 'pin_session'")
        ]
        async with system.http() as client:
            events = [e["event"] for e in (await client.get(f"/sessions/{session_id}/events")).json()]
        assert [e["code"] for e in events if e["type"] == "command_rejected"] == ["unknown_command"]
        # The session takes the next command as usual.
        async with websockets.connect(system.ws_base + session_id) as ws:
            await ws.recv()
            assert (await ask(ws, "still here")).startswith('You said: "still here"')
    finally:
        assert system.stop() == 0
