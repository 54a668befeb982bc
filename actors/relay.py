"""The outbox relay: publishes every event of the log on its session's live subject.

The log is the outbox: an event committed just before a crash is published
when the relay resumes from its checkpoint. Delivery is at-least-once and in
position order; subscribers drop what they have seen by `position`.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from bus import Bus
from projections import Checkpoints, EventLog

logger = structlog.get_logger("agentbus.relay")

CHECKPOINT = "nats_relay"


class Relay:
    """Follows the log from its checkpoint and publishes each event live."""

    def __init__(self, event_log: EventLog, checkpoints: Checkpoints, bus: Bus, *, save_every: float = 0.25) -> None:
        self._event_log = event_log
        self._checkpoints = checkpoints
        self._bus = bus
        self._save_every = save_every
        self.position = 0
        self._saved = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

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
        """Relay forever; the checkpoint is saved a few times a second, and on stop."""
        self.position = self._saved = await self._checkpoints.get(CHECKPOINT)
        saver = asyncio.create_task(self._save_periodically(), name="relay-checkpoint")
        try:
            async for recorded in self._event_log.follow(self.position):
                await self._bus.publish(self._bus.subjects.session_evt(recorded.session_id), recorded)
                self.position = recorded.position
                if self._waiters:
                    self._wake()
        finally:
            saver.cancel()
            await asyncio.gather(saver, return_exceptions=True)
            # Bounded: with NATS unreachable the flush would wait for ever, and an
            # unsaved checkpoint only means a few events are published again.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._save()), 2.0)

    async def _save_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._save_every)
            await self._save()

    async def _save(self) -> None:
        position = self.position
        if position > self._saved:
            # Only what NATS has taken may count as relayed.
            await self._bus.nc.flush()
            await self._checkpoints.set(CHECKPOINT, position)
            self._saved = position
