"""The actor runtime: virtual actors addressed by (kind, id), one message at a time.

An actor is activated on its first message (its `on_activate` replays its
stream), handles its mailbox sequentially, and is passivated after being idle
with nothing in flight. If `handle` raises, the failure is logged, the actor is
dropped, and the next message re-activates it from the log: its state is
whatever its recorded events say, never a half-applied mutation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

import structlog

from .errors import ActorError, MailboxFull

log = structlog.get_logger("agentbus.actors")


class Actor:
    """Base class of actors. Subclasses set `kind` and implement the hooks.

    All hooks run in the actor's own task, never concurrently with each other.
    """

    kind: ClassVar[str]

    def __init__(self, actor_id: str, host: ActorHost) -> None:
        self.id = actor_id
        self.host = host

    async def on_activate(self) -> None:
        """Rebuild state from the log before the first message is handled."""

    async def handle(self, message: Any) -> Any:
        """Handle one message; the return value answers an `ask`."""
        raise NotImplementedError

    def busy(self) -> bool:
        """Return True while work is in flight that forbids passivation (e.g. a running turn)."""
        return False

    async def on_passivate(self) -> None:
        """Release resources; runs after the last message, before the actor is forgotten."""


class DrivenActor(Actor):
    """An actor whose long work (a turn's loop, a meeting) runs in one owned child task, its driver.

    The mailbox stays free meanwhile (for cancel, replies, interventions); the
    actor is busy, so never passivated, while the driver runs, and passivation
    or a stop cancels it.
    """

    _driver: asyncio.Task[None] | None = None

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


class _Letter:
    __slots__ = ("message", "reply")

    def __init__(self, message: Any, reply: asyncio.Future[Any] | None) -> None:
        self.message = message
        self.reply = reply


class _Cell:
    """The running incarnation of one actor: its mailbox and its task."""

    def __init__(self, actor: Actor, mailbox_size: int) -> None:
        self.actor = actor
        self.mailbox: asyncio.Queue[_Letter] = asyncio.Queue(mailbox_size)
        self.task: asyncio.Task[None] | None = None


class ActorHost:
    """Activates, runs and passivates actors of registered kinds within one worker."""

    def __init__(self, *, idle_seconds: float = 60.0, mailbox_size: int = 256) -> None:
        self._factories: dict[str, Callable[[str, ActorHost], Actor]] = {}
        self._cells: dict[tuple[str, str], _Cell] = {}
        self._idle_seconds = idle_seconds
        self._mailbox_size = mailbox_size
        self._closing = False

    def register(self, kind: str, factory: Callable[[str, ActorHost], Actor]) -> None:
        """Declare how to create actors of `kind`."""
        self._factories[kind] = factory

    def tell(self, kind: str, actor_id: str, message: Any) -> None:
        """Deliver a message without waiting; a full mailbox raises `MailboxFull`."""
        self._post(kind, actor_id, _Letter(message, None))

    async def ask(self, kind: str, actor_id: str, message: Any) -> Any:
        """Deliver a message and wait for `handle`'s answer (or its exception)."""
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._post(kind, actor_id, _Letter(message, reply))
        return await reply

    def active(self, kind: str) -> list[str]:
        """Ids of the activated actors of `kind`."""
        return [actor_id for (k, actor_id) in self._cells if k == kind]

    def _post(self, kind: str, actor_id: str, letter: _Letter) -> None:
        if self._closing:
            raise ActorError("actor host is shutting down")
        cell = self._cells.get((kind, actor_id))
        if cell is None:
            factory = self._factories.get(kind)
            if factory is None:
                raise ActorError(f"no actor kind {kind!r} registered")
            cell = _Cell(factory(actor_id, self), self._mailbox_size)
            self._cells[(kind, actor_id)] = cell
            cell.task = asyncio.create_task(self._run(cell), name=f"actor-{kind}-{actor_id}")
        try:
            cell.mailbox.put_nowait(letter)
        except asyncio.QueueFull:
            raise MailboxFull(kind, actor_id) from None

    async def _run(self, cell: _Cell) -> None:
        actor = cell.actor
        structlog.contextvars.bind_contextvars(actor=f"{actor.kind}:{actor.id}")
        letter: _Letter | None = None
        try:
            await actor.on_activate()
            while True:
                try:
                    letter = await asyncio.wait_for(cell.mailbox.get(), self._idle_seconds)
                except TimeoutError:
                    if actor.busy():
                        continue
                    break
                result = await actor.handle(letter.message)
                if letter.reply is not None and not letter.reply.done():
                    letter.reply.set_result(result)
                letter = None
        except Exception as exc:
            log.exception("actor_failed")
            # Detach before answering, so that whatever the asker sends next
            # activates a fresh incarnation from the log.
            self._detach(cell)
            if letter is None:
                # Activation itself failed (e.g. the database is down): the queued
                # messages fail back to their senders rather than spin on retries.
                self._fail_pending(cell)
            else:
                if letter.reply is not None and not letter.reply.done():
                    letter.reply.set_exception(exc)
                self._requeue(cell)
        finally:
            self._detach(cell)
            self._fail_pending(cell)
            try:
                await actor.on_passivate()
            except Exception:
                log.exception("actor_passivate_failed")

    def _detach(self, cell: _Cell) -> None:
        key = (cell.actor.kind, cell.actor.id)
        if self._cells.get(key) is cell:
            del self._cells[key]

    def _requeue(self, cell: _Cell) -> None:
        # The failed message was the culprit; the ones queued behind it go to the next incarnation.
        while not cell.mailbox.empty() and not self._closing:
            self._post(cell.actor.kind, cell.actor.id, cell.mailbox.get_nowait())

    @staticmethod
    def _fail_pending(cell: _Cell) -> None:
        while not cell.mailbox.empty():
            letter = cell.mailbox.get_nowait()
            if letter.reply is not None and not letter.reply.done():
                letter.reply.set_exception(ActorError(f"actor {cell.actor.kind}:{cell.actor.id} stopped"))

    async def stop(self) -> None:
        """Stop every actor; unanswered asks fail with `ActorError`."""
        self._closing = True
        tasks = [cell.task for cell in self._cells.values() if cell.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
