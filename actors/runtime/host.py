"""The actor host: virtual actors addressed by (kind, id), one message at a time.

An actor is activated on its first message (its `on_activate` replays its
stream), handles its mailbox sequentially, and is passivated after being idle
with nothing in flight. If `handle` raises, the failure is logged, the actor is
dropped, and the next message re-activates it from the log: its state is
whatever its recorded events say, never a half-applied mutation.

Each actor's task starts with an empty context, and the log context of each
message (`actor`, `session_id`, `correlation_id`) is bound while it is handled
and cleared after: a message logs its own correlation id, never the one of
whoever happened to activate the actor.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any

import structlog

from bus.tracing import captured, following

from ..errors import ActorError, MailboxFull, is_outage
from .actor import Actor

logger = structlog.get_logger("agentbus.actors")

CARRIED = ("session_id", "correlation_id")
"""Log context a message carries from its sender to the actor that handles it."""


class _Letter:
    __slots__ = ("context", "message", "reply", "trace")

    def __init__(self, message: Any, reply: asyncio.Future[Any] | None) -> None:
        self.message = message
        self.reply = reply
        sender = structlog.contextvars.get_contextvars()
        self.context = {key: sender[key] for key in CARRIED if key in sender}
        self.trace = captured()
        """The sender's trace: the actor handles the message in it, and a driver it starts inherits it."""


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
        self._failures: dict[tuple[str, str], int] = {}

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

    def failures(self, kind: str, actor_id: str) -> int:
        """How many incarnations of this actor failed by themselves (outages not counted) since it last rested.

        An actor forgets its failures when it is passivated after being idle.
        """
        return self._failures.get((kind, actor_id), 0)

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
            # A fresh context: the actor's task must not keep the sender's log context for ever.
            cell.task = asyncio.create_task(
                self._run(cell), name=f"actor-{kind}-{actor_id}", context=contextvars.Context()
            )
        try:
            cell.mailbox.put_nowait(letter)
        except asyncio.QueueFull:
            raise MailboxFull(kind, actor_id) from None

    async def _run(self, cell: _Cell) -> None:
        actor = cell.actor
        name = f"{actor.kind}:{actor.id}"
        structlog.contextvars.bind_contextvars(actor=name)
        letter: _Letter | None = None
        try:
            await actor.on_activate()
            while True:
                structlog.contextvars.clear_contextvars()
                try:
                    letter = await asyncio.wait_for(cell.mailbox.get(), self._idle_seconds)
                except TimeoutError:
                    if actor.busy():
                        continue
                    self._failures.pop((actor.kind, actor.id), None)
                    break
                structlog.contextvars.bind_contextvars(**{"actor": name, **letter.context, **actor.log_context()})
                with following(f"{actor.kind} handle", letter.trace) as span:
                    if span.is_recording():
                        span.set_attributes({"agentbus.actor": name, "agentbus.message": type(letter.message).__name__})
                    result = await actor.handle(letter.message)
                if letter.reply is not None and not letter.reply.done():
                    letter.reply.set_result(result)
                letter = None
        except Exception as exc:
            if is_outage(exc):
                logger.warning("actor_interrupted", error=str(exc))
            else:
                logger.exception("actor_failed")
                self._failures[(actor.kind, actor.id)] = self.failures(actor.kind, actor.id) + 1
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
                logger.exception("actor_passivate_failed")

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

    async def stop_sessions(self, sessions: Callable[[str], bool]) -> int:
        """Stop the actors working for the sessions `sessions` selects (sessions, turns, boards, teams), as `stop` does.

        What they had in flight is cut without recording anything final; the
        next message to one of them activates it afresh from the log. Actors
        that serve no session (experts) keep running. Return how many stopped.
        """
        cells = [
            cell
            for cell in self._cells.values()
            if (session_id := getattr(cell.actor, "session_id", None)) is not None and sessions(session_id)
        ]
        for cell in cells:
            self._detach(cell)
            if cell.task is not None:
                cell.task.cancel()
        await asyncio.gather(*(cell.task for cell in cells if cell.task is not None), return_exceptions=True)
        return len(cells)

    async def stop(self) -> None:
        """Stop every actor; unanswered asks fail with `ActorError`."""
        self._closing = True
        tasks = [cell.task for cell in self._cells.values() if cell.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
