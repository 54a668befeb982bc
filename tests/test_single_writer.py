"""Single writer even when leases lie: two workers both believe they own every partition.

Each worker's leases below say it owns every partition, as they would for a
worker that was paused (or cut off from PostgreSQL) while its partitions moved
on. Both then take the commands of one session, and the same command is
delivered to both, as JetStream does when the first owner seems dead. The
event log's expected-version check makes one writer lose each race; the loser
reloads from the log, and nothing is recorded twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterable

import pytest
import structlog

from actors import Worker
from actors.config import load_config
from actors.llm import OfflineProvider
from actors.session import Deliver, SessionActor
from bus import Bus, publish_command
from projections import EventLog, PartitionLeases, create_engine, migrate
from schemas import CreateSession, RecordedEvent, SendMessage, SessionReady, Subjects, codec
from schemas.events import AssistantMessage, BoardConcluded, ExpertSpeech, UserMessage


class LyingLeases(PartitionLeases):
    """Real membership, but a claim always succeeds: this worker believes it owns whatever it asks for."""

    async def members(self) -> list[int]:
        await super().members()
        return [self.member]

    async def claim(self, partitions: Iterable[int]) -> set[int]:
        return set(partitions)

    async def release(self, partition: int) -> None:
        pass


class Pair:
    """Two workers on one prefix and one database, both owning every partition, and a client bus."""

    def __init__(self, workers: list[Worker], client: Bus, log: EventLog) -> None:
        self.workers = workers
        self.client = client
        self.log = log

    async def create_session(self) -> str:
        ready = await self.client.request(
            self.client.subjects.sessions_create, CreateSession(), codec.create_session_replies
        )
        assert isinstance(ready, SessionReady), ready
        return ready.session_id

    async def send(self, session_id: str, content: str) -> SendMessage:
        command = SendMessage(content=content, idempotency_key=uuid.uuid4().hex)
        await publish_command(self.client, session_id, command)
        return command

    async def deliver_to_both(self, session_id: str, command: SendMessage) -> None:
        """Hand `command` to both workers' sessions, as a redelivery to a second owner would."""
        for worker in self.workers:
            for _ in range(3):  # a lost race drops the stale actor; the next ask reloads it from the log
                try:
                    await worker.host.ask(SessionActor.kind, session_id, Deliver(command=command))
                    break
                except Exception as exc:
                    assert "expected version" in str(exc), exc

    async def until(self, session_id: str, done: Callable[[list[RecordedEvent]], bool]) -> list[RecordedEvent]:
        """Wait until the session's log satisfies `done`, looking again whenever one of its events is published."""
        feed = await self.client.subscribe(self.client.subjects.session_evt(session_id), codec.feed)
        published = asyncio.Event()

        async def listen() -> None:
            async for _ in feed:
                published.set()

        listener = asyncio.create_task(listen())
        try:
            async with asyncio.timeout(60):
                while not done(events := await self.log.read_session(session_id)):
                    published.clear()
                    # Also look again after a quiet second: an event may have been published before we listened.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(published.wait(), 1.0)
            return events
        finally:
            listener.cancel()
            await feed.close()


@pytest.fixture
async def pair(nats_url: str, fresh_database_url: str, subject_prefix: str) -> AsyncIterator[Pair]:
    config = load_config()
    subjects = Subjects(subject_prefix)
    engines = [create_engine(fresh_database_url) for _ in range(2)]
    await migrate(engines[0])
    buses = [await Bus.connect(nats_url, name=f"worker-{n}", subjects=subjects) for n in range(2)]
    workers = [
        Worker(
            bus,
            engine,
            OfflineProvider(delay=0.003),
            config=config,
            ack_wait=3.0,
            leases=LyingLeases(engine, subject_prefix),
        )
        for bus, engine in zip(buses, engines, strict=True)
    ]
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    await asyncio.gather(*(worker.ready.wait() for worker in workers))
    client = await Bus.connect(nats_url, name="client", subjects=subjects)
    log = EventLog(engines[0])
    yield Pair(workers, client, log)
    await client.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for bus in buses:
        await bus.close()
    await log.close()
    for engine in engines:
        await engine.dispose()


def answers(events: list[RecordedEvent]) -> list[AssistantMessage]:
    return [recorded.event for recorded in events if isinstance(recorded.event, AssistantMessage)]


def said(events: list[RecordedEvent]) -> list[str]:
    return [recorded.event.content for recorded in events if isinstance(recorded.event, UserMessage)]


async def test_a_message_taken_by_two_owners_is_recorded_and_answered_once(pair: Pair) -> None:
    session_id = await pair.create_session()
    with structlog.testing.capture_logs() as logs:
        for n in range(4):
            command = await pair.send(session_id, f"message {n}")
            await pair.until(session_id, lambda events, n=n: len(answers(events)) == n + 1)
            # Both owners now take the same command again: the stale one loses the race and reloads.
            await pair.deliver_to_both(session_id, command)
    events = await pair.log.read_session(session_id)
    assert said(events) == [f"message {n}" for n in range(4)]
    assert [answer.reply_to for answer in answers(events)] == [
        recorded.event.message_id for recorded in events if isinstance(recorded.event, UserMessage)
    ]
    assert any("expected version" in str(entry.get("error", "")) for entry in logs), "no owner ever lost a race"


async def test_a_board_driven_by_two_owners_at_once_records_each_speech_once_and_the_session_goes_on(
    pair: Pair,
) -> None:
    session_id = await pair.create_session()
    board = await pair.send(session_id, "@board rounds=2 Should we move the office to a four-day week?")
    await pair.until(session_id, lambda events: any(isinstance(r.event, ExpertSpeech) for r in events))
    with structlog.testing.capture_logs() as logs:
        # The second owner resumes the board from the log while the first keeps driving it.
        await pair.deliver_to_both(session_id, board)
        events = await pair.until(session_id, lambda events: len(answers(events)) == 1)
    assert any("expected version" in str(entry.get("error", "")) for entry in logs), "no driver ever lost a race"
    speeches = [(r.event.round, r.event.expert_name) for r in events if isinstance(r.event, ExpertSpeech)]
    assert speeches and len(speeches) == len(set(speeches)), speeches
    assert sum(isinstance(r.event, BoardConcluded) for r in events) == 1

    await pair.send(session_id, "and now a plain question")
    events = await pair.until(session_id, lambda events: len(answers(events)) == 2)
    assert said(events)[-1] == "and now a plain question"
    assert len(answers(events)) == 2
