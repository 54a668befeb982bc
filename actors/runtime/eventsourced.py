"""Event-sourced actors: the stream is the state; replayed on activation, changed only by recording.

`EventSourcedActor` owns everything the families share: the stream's name,
replaying it on activation, recording new events at the expected version (the
database enforces one writer per stream), and reporting an outcome to the
session. A family adds its pure `evolve` (given to the constructor), its
`decide` functions, and the I/O of its `handle`. `DrivenActor` adds the owned
driver task in which a turn's loop or a meeting runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import msgspec
import structlog

from projections import NewEvent, SkippedEvent
from schemas import EventMeta, RecordedEvent
from schemas.events import AnyEvent, SessionErased, StreamErased

from .actor import Actor, Host

if TYPE_CHECKING:
    from ..context import WorkerContext


logger = structlog.get_logger("agentbus.actors")

MAX_ATTEMPTS = 3
"""Incarnations of a driven actor that may fail by themselves before its work is recorded as failed."""


class Versioned(Protocol):
    """A state that counts the events folded into it (the stream's version)."""

    version: int


S = TypeVar("S", bound=Versioned)


class EventSourcedActor(Actor, Generic[S]):
    """An actor whose state is rebuilt from its own stream and changes only by `record`.

    `session_id` is the session the actor's events belong to: known from the
    constructor (a session), from the first replayed event, or from the message
    that starts the actor's work.
    """

    def __init__(
        self,
        actor_id: str,
        host: Host,
        ctx: WorkerContext,
        *,
        stream: str,
        state: S,
        evolve: Callable[[S, AnyEvent], S],
        session_id: str | None = None,
    ) -> None:
        super().__init__(actor_id, host)
        self.ctx = ctx
        self.stream = stream
        self.state = state
        self.session_id = session_id
        self.position = 0
        """The log position of the last event of the stream this actor has seen."""
        self.erased = False
        """Whether the stream ends in a tombstone: its session was erased, so its work never starts again."""
        self._evolve = evolve

    def log_context(self) -> dict[str, str]:
        return {"session_id": self.session_id} if self.session_id else {}

    async def on_activate(self) -> None:
        async for recorded in self.ctx.event_log.replay_stream(self.stream):
            self.session_id = recorded.session_id
            if isinstance(recorded, SkippedEvent):
                # A newer worker's event (logged and counted by the log): what it changed is unknown
                # here, but the next append must still be at the stream's true version.
                self.state.version = recorded.version
                self.position = recorded.position
            elif isinstance(recorded.event, SessionErased | StreamErased):
                # What came before was erased (`projections.erasure`): no family folds a tombstone.
                self.erased = True
                self.state.version = recorded.version
                self.position = recorded.position
            else:
                self._fold(recorded)

    async def record(self, events: list[AnyEvent], *, cause: str | None) -> int:
        """Append `events` at the state's version, fold them in, and return the last one's position.

        `cause` (the command or actor that led to them) becomes the events'
        causation and correlation id. Once the state has an outcome, the
        session is told (`report`).
        """
        assert self.session_id is not None, f"{self.kind}:{self.id} records events once it knows its session"
        meta = EventMeta(causation_id=cause, correlation_id=cause, actor=f"{self.kind}:{self.id}")
        recorded = await self.ctx.event_log.append(
            self.stream,
            [NewEvent(event=event, session_id=self.session_id, meta=meta) for event in events],
            expected_version=self.state.version,
        )
        for item in recorded:
            self._fold(item)
        self.report()
        return self.position

    def finished(self) -> msgspec.Struct | None:
        """The message that tells the session this actor's work ended, or None while it has not."""
        return None

    def report(self) -> None:
        """Tell the session the outcome, if there is one (idempotent: the session ignores a repeat)."""
        finished = self.finished()
        if finished is not None and self.session_id is not None:
            self.host.tell("session", self.session_id, finished)

    def _fold(self, recorded: RecordedEvent) -> None:
        self.state = self._evolve(self.state, recorded.event)
        self.position = recorded.position


class DrivenActor(EventSourcedActor[S]):
    """An event-sourced actor whose long work (a turn's loop, a meeting) runs in one owned task, its driver.

    The mailbox stays free meanwhile (for cancel, replies, interventions); the
    actor is busy, so never passivated, while the driver runs, and passivation
    or a stop cancels it. The driver keeps the log context of the message that
    started it.
    """

    _driver: asyncio.Task[None] | None = None

    async def take_start(self, session_id: str, failed: Callable[[str], list[AnyEvent]]) -> bool:
        """Take a request to start (or resume) the work; True if the caller should start its driver now.

        Work of an erased session is not taken; an ended work is reported again, one at work ignores the request,
        and after `MAX_ATTEMPTS` incarnations failed by themselves the work is
        recorded as failed (`failed(reason)` gives its events) instead of resumed.
        """
        self.session_id = self.session_id or session_id
        if self.erased:  # the session was erased while this worked: nothing of it may be recorded again
            logger.info("erased_work_not_resumed", kind=self.kind, actor_id=self.id)
            return False
        if self.finished() is not None:
            self.report()
            return False
        if self.busy():
            return False
        failures = self.host.failures(self.kind, self.id)
        if failures >= MAX_ATTEMPTS:
            reason = f"gave up after {failures} failed attempts (see the worker's log for {self.kind}:{self.id})"
            await self.record(failed(reason), cause=self.id)
            return False
        return True

    def busy(self) -> bool:
        return self._driver is not None and not self._driver.done()

    async def on_passivate(self) -> None:
        await self._stop_driver()

    def _start_driver(self, work: Coroutine[Any, Any, None], name: str) -> None:
        self._driver = asyncio.create_task(work, name=name)

    async def _stop_driver(self) -> None:
        """Cancel the driver and wait for it (a no-op when called from the driver itself)."""
        driver, self._driver = self._driver, None
        if driver is not None and driver is not asyncio.current_task():
            driver.cancel()
            await asyncio.gather(driver, return_exceptions=True)
