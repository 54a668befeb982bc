"""The bus as a public API: the events request answered from the log, and docs/bus.md naming what travels.

A service that reconnects pages `<prefix>.session.<sid>.events` from the last
position it saw and gets every event once, in order, in the envelope the live
subject carries; bad input is an `error` reply and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import typing
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from actors.history import HistoryServer, read_page
from bus import Bus
from projections import EventLog, NewEvent, create_engine, migrate
from schemas import ErrorReply, EventOmitted, RecordedEvent, Subjects, encode, session_stream, tag_of
from schemas.commands import SessionCommand
from schemas.events import SessionCreated, UserMessage
from schemas.frames import AnyFrame
from schemas.history import MAX_LIMIT, EventsPage, EventsReply, ReadEvents, events_replies
from tests.conftest import outage
from tests.system import System

DOCS = Path(__file__).resolve().parents[1] / "docs" / "bus.md"


class Served(typing.NamedTuple):
    log: EventLog
    bus: Bus
    server: HistoryServer


@pytest.fixture
async def served(nats_url: str, fresh_database_url: str, subject_prefix: str) -> AsyncIterator[Served]:
    """A history server on a real NATS and a fresh, migrated database, with a client bus of its own."""
    engine = create_engine(fresh_database_url)
    await migrate(engine)
    log = EventLog(engine)
    server_bus = await Bus.connect(nats_url, name="history", subjects=Subjects(subject_prefix))
    server = HistoryServer(server_bus, log, read_timeout=2.0)
    await server.start()
    client = await Bus.connect(nats_url, name="client", subjects=Subjects(subject_prefix))
    yield Served(log, client, server)
    await client.close()
    await server.stop()
    await server_bus.close()
    await log.close()
    await engine.dispose()


def said(text: str, session_id: str = "s1") -> NewEvent:
    event = UserMessage(message_id=uuid.uuid4().hex, content=text, idempotency_key=uuid.uuid4().hex)
    return NewEvent(event=event, session_id=session_id)


async def open_session(log: EventLog, session_id: str, messages: list[str]) -> list[RecordedEvent]:
    created = NewEvent(event=SessionCreated(session_id=session_id, agent_name="assistant"), session_id=session_id)
    return await log.append(session_stream(session_id), [created, *(said(m, session_id) for m in messages)], 0)


async def ask(bus: Bus, session_id: str, body: bytes) -> EventsReply:
    msg = await bus.nc.request(bus.subjects.session_events(session_id), body, timeout=5)
    return events_replies.decode(msg.data)


async def page_all(bus: Bus, session_id: str, *, after: int = 0, limit: int = 100) -> list[EventsPage]:
    pages: list[EventsPage] = []
    while True:
        page = await bus.request(
            bus.subjects.session_events(session_id), ReadEvents(after=after, limit=limit), events_replies
        )
        assert isinstance(page, EventsPage), page
        pages.append(page)
        after = page.next_after
        if not page.more:
            return pages


async def test_a_service_pages_from_any_position_and_gets_each_event_of_its_session_once_in_order(
    served: Served,
) -> None:
    ours = await open_session(served.log, "s1", [f"m{i}" for i in range(120)])
    await open_session(served.log, "s2", ["other"])
    ours += await served.log.append(session_stream("s1"), [said(f"n{i}") for i in range(129)], 121)

    pages = await page_all(served.bus, "s1", limit=100)
    assert [len(p.events) for p in pages] == [100, 100, 50]
    assert [p.more for p in pages] == [True, True, False]
    assert [item for p in pages for item in p.events] == ours
    assert pages[-1].next_after == ours[-1].position

    # From the middle, as a service that saw up to position 150 before it went away.
    resumed = await page_all(served.bus, "s1", after=ours[149].position, limit=64)
    assert [item for p in resumed for item in p.events] == ours[150:]


async def test_a_caught_up_service_gets_an_empty_page_that_keeps_its_position(served: Served) -> None:
    recorded = await open_session(served.log, "s1", ["hi"])
    reply = await ask(served.bus, "s1", encode(ReadEvents(after=recorded[-1].position)))
    assert reply == EventsPage(session_id="s1", events=[], next_after=recorded[-1].position, more=False)


async def test_an_empty_request_means_after_0_and_100_events(served: Served) -> None:
    recorded = await open_session(served.log, "s1", [str(i) for i in range(150)])
    for body in (b"", b"{}", b'{"type":"read_events"}'):
        reply = await ask(served.bus, "s1", body)
        assert isinstance(reply, EventsPage) and reply.events == recorded[:100] and reply.more


async def test_a_limit_above_1000_is_cut_to_1000(served: Served) -> None:
    await open_session(served.log, "s1", [str(i) for i in range(MAX_LIMIT + 50)])
    reply = await ask(served.bus, "s1", b'{"limit": 1000000}')
    assert isinstance(reply, EventsPage) and len(reply.events) == MAX_LIMIT and reply.more


async def test_a_page_ends_before_it_outgrows_what_nats_carries_and_paging_gets_the_rest(served: Served) -> None:
    big = "x" * (200 * 1024)
    recorded = await open_session(served.log, "s1", [big] * 8)
    first = await served.bus.nc.request(served.bus.subjects.session_events("s1"), b'{"limit":100}', timeout=5)
    page = events_replies.decode(first.data)
    assert isinstance(page, EventsPage) and page.more and 1 < len(page.events) < len(recorded)
    assert len(first.data) <= served.bus.nc.max_payload
    pages = await page_all(served.bus, "s1")
    assert [item for p in pages for item in p.events] == recorded


async def test_an_event_too_large_for_any_reply_is_an_event_omitted_notice_and_paging_moves_past_it(
    served: Served,
) -> None:
    recorded = await open_session(served.log, "s1", ["x" * 4000, "small"])
    page = await read_page(served.log, "s1", ReadEvents(after=recorded[0].position, limit=10), max_bytes=2000)
    assert isinstance(page, EventsPage)
    notice, after = page.events
    assert isinstance(notice, EventOmitted) and notice.position == recorded[1].position
    assert notice.event_type == tag_of(UserMessage) and notice.stream == "session-s1"
    assert after == recorded[2] and page.next_after == recorded[2].position and not page.more


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"after": -1}',
        b'{"after": "10"}',
        b'{"after": 9223372036854775808}',
        b'{"limit": 0}',
        b'{"limit": 1.5}',
        b'{"since": 3}',
        b'{"type": "send_message"}',
        b"\xff\xfe",
    ],
)
async def test_bad_requests_get_an_error_reply_and_the_server_keeps_serving(served: Served, body: bytes) -> None:
    await open_session(served.log, "s1", ["hi"])
    reply = await ask(served.bus, "s1", body)
    assert isinstance(reply, ErrorReply) and reply.code == "invalid_message", reply
    assert isinstance(await ask(served.bus, "s1", b"{}"), EventsPage)


async def test_an_unknown_session_and_an_invalid_id_are_error_replies(served: Served) -> None:
    unknown = await ask(served.bus, "nobody", b"{}")
    assert isinstance(unknown, ErrorReply) and unknown.code == "unknown_session"
    msg = await served.bus.nc.request(f"{served.bus.subjects.prefix}.session.bad$id.events", b"{}", timeout=5)
    invalid = events_replies.decode(msg.data)
    assert isinstance(invalid, ErrorReply) and invalid.code == "invalid_session_id"


async def test_a_published_events_message_without_a_reply_subject_is_ignored(served: Served) -> None:
    await open_session(served.log, "s1", ["hi"])
    await served.bus.nc.publish(served.bus.subjects.session_events("s1"), b"{}")
    await served.bus.flush()
    assert isinstance(await ask(served.bus, "s1", b"{}"), EventsPage)


async def test_an_unreachable_database_is_answered_unavailable_and_the_log_is_served_again_after(
    served: Served, postgres_url: str, fresh_database_url: str
) -> None:
    recorded = await open_session(served.log, "s1", ["hi"])
    async with outage(postgres_url, fresh_database_url):
        reply = await ask(served.bus, "s1", b"{}")
        assert isinstance(reply, ErrorReply) and reply.code == "unavailable", reply
    async with asyncio.timeout(20):
        while not isinstance(reply := await ask(served.bus, "s1", b"{}"), EventsPage):
            await asyncio.sleep(0.2)
    assert reply.events == recorded


async def test_the_worker_answers_with_the_envelope_the_live_subject_carried(system: System) -> None:
    prefix = system.env["AGENTBUS_SUBJECT_PREFIX"]
    nc = await nats.connect(system.nats_url)
    try:
        created = json.loads((await nc.request(f"{prefix}.sessions.create", b"{}", timeout=5)).data)
        session_id = created["session_id"]
        live = await nc.subscribe(f"{prefix}.session.{session_id}.evt")
        await nc.flush()
        command = {"type": "send_message", "content": "hello", "idempotency_key": "k1"}
        await nc.jetstream().publish(
            f"{prefix}.session.{session_id}.cmd",
            json.dumps(command).encode(),
            headers={"Nats-Msg-Id": f"{session_id}:k1"},
        )
        seen: dict[int, dict] = {}
        async with asyncio.timeout(30):
            async for msg in live.messages:
                item = json.loads(msg.data)
                if item["type"] == "event":
                    seen[item["position"]] = item
                    if item["event"]["type"] == "assistant_message":
                        break
        page = json.loads((await nc.request(f"{prefix}.session.{session_id}.events", b"{}", timeout=5)).data)
    finally:
        await nc.close()
    assert page["type"] == "events_page" and page["more"] is False
    logged = {item["position"]: item for item in page["events"]}
    assert logged[created["position"]]["event"]["type"] == "session_created"
    assert {position: logged[position] for position in seen} == seen


def test_docs_bus_names_every_subject_command_frame_and_error_code() -> None:
    text = DOCS.read_text()
    subjects = Subjects("agentbus")
    per_session = (subjects.session_cmd("sid"), subjects.session_events("sid"), subjects.session_evt("sid"))
    for subject in (subjects.sessions_create, *(s.replace(".sid.", ".<sid>.") for s in per_session)):
        assert f"`{subject}`" in text, subject
    tags = [tag_of(t) for t in (*typing.get_args(SessionCommand), *typing.get_args(AnyFrame))]
    missing = [tag for tag in tags if f"`{tag}`" not in text]
    assert not missing, f"docs/bus.md does not name {missing}"
    for code in ("invalid_message", "unknown_session", "invalid_session_id", "unavailable", "internal"):
        assert f"`{code}`" in text, code
    assert "`Nats-Msg-Id: <sid>:<key>`" in text
