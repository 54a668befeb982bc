"""A cheap view of whether the gateway can take work now: NATS connected, the database answering.

A command accepted while the database is down would wait unseen in JetStream
until it returns, and its sender would hear nothing; so the gateway refuses it
at once with `service_unavailable`. Probing the database for each message
would cost a round trip each, so `Health` probes it at most once per
`interval` (inline, in the caller that finds the view stale), and a database
failure seen by any request marks it down at once.
"""

from __future__ import annotations

import asyncio
import time

from bus import Bus
from projections import EventLog, EventLogError

SERVICE_UNAVAILABLE = "service_unavailable"


class Health:
    """The database's and NATS's state as the last probe saw it, and how long the relay has lagged."""

    def __init__(self, *, interval: float = 1.0, timeout: float = 1.0) -> None:
        self.interval = interval
        self.timeout = timeout
        self._database_error: str | None = None
        self._checked_at = -float("inf")
        self._probing = asyncio.Lock()
        self._lagging_since: float | None = None

    def database_failed(self, reason: str) -> None:
        """Record a database failure a request ran into; the next probe is due `interval` later."""
        self._database_error = reason
        self._checked_at = time.monotonic()

    async def unavailable(self, bus: Bus, event_log: EventLog, *, database: bool = True) -> str | None:
        """Return why commands cannot be taken now (NATS or the database down), or None.

        `database=False` skips the database, for a caller that has just read it.
        """
        if not bus.nc.is_connected:
            return "NATS is not connected"
        if not database:
            return None
        if time.monotonic() - self._checked_at >= self.interval:
            async with self._probing:
                if time.monotonic() - self._checked_at >= self.interval:  # not probed while we waited
                    await self._probe(event_log)
        if self._database_error is not None:
            return f"the database is unavailable: {self._database_error}"
        return None

    async def _probe(self, event_log: EventLog) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await event_log.last_position()
        except TimeoutError:
            self.database_failed(f"no answer within {self.timeout} s")
        except EventLogError as exc:
            self.database_failed(str(exc))
        else:
            self._database_error = None
            self._checked_at = time.monotonic()

    def lagging_for(self, lagging: bool) -> float:
        """Record whether the relay lags now; return for how many seconds it has lagged without a break."""
        now = time.monotonic()
        if not lagging:
            self._lagging_since = None
            return 0.0
        if self._lagging_since is None:
            self._lagging_since = now
        return now - self._lagging_since
