"""How far the log reaches, as this gateway last read it: a live event beyond it is checked before it is believed.

A position on a live subject is only a claim: a bogus item with a position far
ahead of the log would move every socket's cursor past the real events to come,
and each would then be dropped as already sent. The relay publishes an event
only after it committed, so a real one is always within the log's head by the
time it arrives; the head is read again (one query for the whole gateway,
shared by every session that waits on it) only when an item claims more.
"""

from __future__ import annotations

import asyncio

from projections import EventLog


class LogHead:
    """The largest committed position this gateway knows of, read again when an item claims a larger one."""

    def __init__(self, event_log: EventLog) -> None:
        self._event_log = event_log
        self.known = 0
        self._reading: asyncio.Task[int] | None = None

    async def covers(self, position: int) -> bool:
        """Whether the log holds positions up to `position`; `EventLogError` if it cannot be read."""
        if position <= self.known:
            return True
        # A read already under way may have started before `position` committed: only one
        # started after we asked can say it is not there.
        joined = self._reading is not None
        if await self._read() >= position:
            return True
        return joined and await self._read() >= position

    async def _read(self) -> int:
        """The log's head, from the read under way or a new one (shielded: a waiter that leaves cancels nothing)."""
        if self._reading is None:
            self._reading = asyncio.create_task(self._event_log.last_position(), name="log-head")
            self._reading.add_done_callback(self._done)
        head = await asyncio.shield(self._reading)
        self.known = max(self.known, head)
        return self.known

    def _done(self, task: asyncio.Task[int]) -> None:
        if self._reading is task:
            self._reading = None
        if not task.cancelled():
            task.exception()  # retrieved: every waiter got it already
