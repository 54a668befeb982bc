"""The actor runtime: one message at a time, activation, passivation, and recovery from a failure."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import structlog

from actors import Actor, ActorError, ActorHost, MailboxFull
from projections import DatabaseError


class Recorder(Actor):
    kind = "rec"
    activations: list[str] = []
    passivations: list[str] = []

    def __init__(self, actor_id: str, host: ActorHost) -> None:
        super().__init__(actor_id, host)
        self.handled: list[Any] = []
        self.running = 0

    async def on_activate(self) -> None:
        Recorder.activations.append(self.id)

    async def on_passivate(self) -> None:
        Recorder.passivations.append(self.id)

    async def handle(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError("boom")
        if message == "outage":
            raise DatabaseError("append", "connection refused")
        self.running += 1
        assert self.running == 1, "two messages handled at once"
        await asyncio.sleep(0.001)
        self.running -= 1
        self.handled.append(message)
        return list(self.handled)


@pytest.fixture
async def host():
    Recorder.activations, Recorder.passivations = [], []
    host = ActorHost(idle_seconds=0.2, mailbox_size=8)
    host.register(Recorder.kind, Recorder)
    yield host
    await host.stop()


async def test_messages_to_one_actor_are_handled_one_at_a_time_in_order(host: ActorHost) -> None:
    for i in range(5):
        host.tell("rec", "a", i)
    assert await host.ask("rec", "a", 5) == [0, 1, 2, 3, 4, 5]
    assert Recorder.activations == ["a"]


async def test_an_idle_actor_is_passivated_and_reactivated_on_its_next_message(host: ActorHost) -> None:
    await host.ask("rec", "a", 1)
    await asyncio.sleep(0.5)
    assert Recorder.passivations == ["a"] and host.active("rec") == []
    assert await host.ask("rec", "a", 2) == [2]
    assert Recorder.activations == ["a", "a"]


async def test_a_failing_message_goes_back_to_the_asker_and_the_actor_is_reactivated(host: ActorHost) -> None:
    await host.ask("rec", "a", 1)
    with pytest.raises(RuntimeError, match="boom"):
        await host.ask("rec", "a", "boom")
    assert await host.ask("rec", "a", 2) == [2]
    assert Recorder.activations == ["a", "a"]


async def test_failures_of_the_actor_itself_are_counted_outages_are_not(host: ActorHost) -> None:
    """What bounds a driven actor's attempts: only failures that are its own."""
    for message in ("boom", "outage", "boom", "outage"):
        with pytest.raises((RuntimeError, DatabaseError)):
            await host.ask("rec", "a", message)
    assert host.failures("rec", "a") == 2
    assert await host.ask("rec", "a", 1) == [1]  # re-activated each time, from nothing but its log


async def test_a_full_mailbox_refuses_instead_of_growing(host: ActorHost) -> None:
    with pytest.raises(MailboxFull):
        for i in range(100):
            host.tell("rec", "a", i)


async def test_an_unknown_kind_is_an_error(host: ActorHost) -> None:
    with pytest.raises(ActorError, match="no actor kind"):
        host.tell("nope", "a", 1)


class Logger(Actor):
    kind = "logger"

    async def handle(self, message: Any) -> Any:
        structlog.get_logger("test").info("handled", message=message)
        if message == "bind":
            structlog.contextvars.bind_contextvars(leaked="yes")
        return None


async def test_each_message_logs_its_own_session_and_correlation_id_not_the_activators() -> None:
    host = ActorHost()
    host.register(Logger.kind, Logger)

    async def send(message: str, correlation_id: str) -> None:
        # Each sender runs in its own task, with its own log context, as the worker's deliveries do.
        structlog.contextvars.bind_contextvars(session_id="s1", correlation_id=correlation_id)
        await host.ask("logger", "a", message)

    try:
        with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
            await asyncio.create_task(send("first", "c1"))
            await asyncio.create_task(send("bind", "c2"))
            await host.ask("logger", "a", "third")  # a sender with no context at all
    finally:
        await host.stop()
    handled = [(entry["message"], entry.get("correlation_id"), entry.get("leaked")) for entry in logs]
    assert handled == [("first", "c1", None), ("bind", "c2", None), ("third", None, None)]
    assert {entry["actor"] for entry in logs} == {"logger:a"}
    assert [entry.get("session_id") for entry in logs] == ["s1", "s1", None]
