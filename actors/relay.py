"""The outbox relay: publishes the events of the log on their sessions' live subjects.

The log is the outbox: an event committed just before a crash is published
when the relay resumes from its checkpoint. Delivery is at-least-once and in
position order; subscribers drop what they have seen by `position`.

An event this worker's code cannot read (a newer worker's, during a rolling
upgrade) goes out as an `EventOmitted` notice, as one too large for NATS does:
a gateway that knows its type reads it from the log, and the checkpoint moves on.

A worker relays only the sessions of the command partitions it leases, with
one checkpoint per partition of the layout (`schemas.layout`) that never moves backwards, so that however many
workers run, each event is published once in steady state (again only around
a takeover), and a board waiting for its own events waits on its own worker.

Relaying a session's tombstone (`SessionErased`) also stops the session's
actors on this worker (`on_erased`: the partition's owner hosts them), so work
in flight is cut at once, and removes what the session left on NATS (its
commands, its uploads: `bus.erasure`); a failure stops the follower, which its
supervisor restarts from the checkpoint, and each step is done again harmlessly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from bus import Bus, MessageTooLarge
from bus.erasure import erase_session_traces
from bus.tracing import SpanKind, following, from_traceparent
from projections import Checkpoints, EventLog, SkippedEvent
from schemas import Layout, RecordedEvent, tag_of
from schemas.events import SessionErased
from schemas.frames import EventOmitted

logger = structlog.get_logger("agentbus.relay")

CHECKPOINT = Layout(0).checkpoint(0)
"""The checkpoint of an unpartitioned relay (each partition of a layout has its own, `Layout.checkpoint`)."""


class Relay:
    """Follows the log from the owned partitions' checkpoints and publishes their events live.

    Until `own` is called, it relays every partition of an unpartitioned stream.
    """

    def __init__(
        self,
        event_log: EventLog,
        checkpoints: Checkpoints,
        bus: Bus,
        *,
        save_every: float = 0.25,
        on_erased: Callable[[str], Awaitable[object]] | None = None,
    ) -> None:
        self._event_log = event_log
        self._on_erased = on_erased
        self._checkpoints = checkpoints
        self._bus = bus
        self._save_every = save_every
        self._layout = Layout(0)
        self._owned: set[int] = {0}
        self._changed = asyncio.Event()
        self._published: dict[int, int] = {}
        """partition -> the position up to which its events are published"""
        self._saved: dict[int, int] = {}
        self._loaded = Layout(0)
        """The layout `_published` and `_saved` are partitions of."""
        self.position = 0
        """How far the relay has read the log (every owned partition is published up to here)."""
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def own(self, partitions: set[int], *, of: Layout) -> None:
        """Relay exactly `partitions` of the command layout `of` from now on."""
        if partitions != self._owned or of != self._layout:
            self._owned, self._layout = set(partitions), of
            self._changed.set()

    async def wait_for(self, position: int, timeout: float = 2.0) -> bool:
        """Wait until the events up to `position` are published; False if that takes over `timeout` s.

        A board waits for this before its next expert speaks, so that expert's
        live chunks never reach a client before the speech recorded ahead of them.
        """
        if self.position >= position:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (position, waiter)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(waiter, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    def _wake(self) -> None:
        for position, waiter in self._waiters:
            if position <= self.position and not waiter.done():
                waiter.set_result(None)

    async def run(self) -> None:
        """Relay forever, following the partitions owned; checkpoints are saved a few times a second, and on stop."""
        saver = asyncio.create_task(self._save_periodically(), name="relay-checkpoint")
        try:
            while True:
                self._changed.clear()
                owned, layout = set(self._owned), self._layout
                await self._load(owned, layout)
                if not owned:
                    await self._changed.wait()
                    continue
                follower = asyncio.create_task(self._follow(owned, layout), name="relay-follow")
                changed = asyncio.create_task(self._changed.wait(), name="relay-leases")
                try:
                    await asyncio.wait([follower, changed], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (follower, changed):
                        task.cancel()
                    await asyncio.gather(follower, changed, return_exceptions=True)
                if follower.done() and not follower.cancelled() and follower.exception() is not None:
                    raise follower.exception()  # type: ignore[misc]
        finally:
            saver.cancel()
            await asyncio.gather(saver, return_exceptions=True)
            # Bounded: with the database unreachable the save would wait for ever, and an
            # unsaved checkpoint only means a few events are published again.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._save()), 2.0)

    async def _load(self, owned: set[int], layout: Layout) -> None:
        """Forget released partitions (saving them first) and load the checkpoints of newly owned ones."""
        released = set(self._published) - owned if layout == self._loaded else set(self._published)
        if released:
            await self._save()
            for partition in released:
                self._published.pop(partition)
                self._saved.pop(partition, None)
        self._loaded = layout
        for partition in owned - set(self._published):
            position = await self._checkpoints.get(layout.checkpoint(partition))
            if not position and layout.partitions > 0 and layout.generation == 0:
                position = await self._checkpoints.get(CHECKPOINT)  # upgraded from one relay for everything
            self._published[partition] = self._saved[partition] = position

    async def _follow(self, owned: set[int], layout: Layout) -> None:
        start = min(self._published[partition] for partition in owned)
        self.position = start
        async for recorded in self._event_log.follow(start):
            partition = layout.partition(recorded.session_id)
            if partition in owned and recorded.position > self._published[partition]:
                await self._publish(recorded)
                if isinstance(recorded, RecordedEvent) and isinstance(recorded.event, SessionErased):
                    if self._on_erased is not None:
                        await self._on_erased(recorded.session_id)
                    await erase_session_traces(self._bus, recorded.session_id, recorded.event.uploads)
            for each in owned:
                self._published[each] = max(self._published[each], recorded.position)
            self.position = recorded.position
            if self._waiters:
                self._wake()

    async def _publish(self, recorded: RecordedEvent | SkippedEvent) -> None:
        subject = self._bus.subjects.session_evt(recorded.session_id)
        if isinstance(recorded, SkippedEvent):
            notice = EventOmitted(
                position=recorded.position,
                stream=recorded.stream,
                event_type=recorded.type,
                reason=f"this relay cannot read it ({recorded.reason})",
            )
            await self._bus.publish(subject, notice)
            return
        try:
            # The append's trace goes on (its context is in the event's meta): the gateway continues it from here.
            with following(
                "relay publish", from_traceparent(recorded.meta.traceparent), kind=SpanKind.PRODUCER
            ) as span:
                if span.is_recording():
                    span.set_attributes(
                        {"agentbus.position": recorded.position, "agentbus.event": tag_of(type(recorded.event))}
                    )
                await self._bus.publish(subject, recorded)
        except MessageTooLarge as exc:
            # It cannot ever be carried: a small notice takes its place, so live delivery goes on.
            logger.warning("event_too_large", position=recorded.position, size=exc.size)
            notice = EventOmitted(
                position=recorded.position,
                stream=recorded.stream,
                event_type=tag_of(type(recorded.event)),
                reason=str(exc),
            )
            await self._bus.publish(subject, notice)

    async def _save_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._save_every)
            try:
                await self._save()
            except Exception as exc:  # supervised here: a failed save is retried at the next tick
                logger.warning("relay_checkpoint_failed", error=str(exc) or type(exc).__name__)

    async def _save(self) -> None:
        changed = {p: position for p, position in self._published.items() if position > self._saved.get(p, 0)}
        if not changed:
            return
        # Only what NATS has taken may count as relayed.
        await self._bus.flush()
        for partition, position in changed.items():
            await self._checkpoints.advance(self._loaded.checkpoint(partition), position)
            self._saved[partition] = position
