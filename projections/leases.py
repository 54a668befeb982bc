"""Partition leases: which worker consumes which command partition.

A lease is a session-level advisory lock held on the worker's own connection.
PostgreSQL releases it when that connection ends, so when a worker dies (even
with kill -9) its partitions become free and the other workers take them over
at their next `claim`, without any lease timer to tune.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg
import structlog

from . import _locks
from .database import Engine, asyncpg_dsn

logger = structlog.get_logger(__name__)


class PartitionLeases:
    """The command partitions of `prefix` this process holds."""

    def __init__(self, engine: Engine, prefix: str) -> None:
        self._dsn = asyncpg_dsn(engine.url)
        self._prefix = prefix
        self._conn: asyncpg.Connection | None = None
        self._held: set[int] = set()

    async def claim(self, partitions: Iterable[int]) -> set[int]:
        """Try to take every partition not held yet; return all held now.

        If the lease connection was lost, every lease went with it: the result
        is empty until a new connection takes partitions again.
        """
        try:
            if self._conn is None or self._conn.is_closed():
                self._held.clear()
                self._conn = await asyncpg.connect(self._dsn, server_settings={"application_name": "agentbus-leases"})
            await self._conn.fetchval("SELECT 1")
            for partition in partitions:
                if partition not in self._held and await self._conn.fetchval(
                    "SELECT pg_try_advisory_lock($1, hashtext($2))",
                    _locks.PARTITION_CLASS,
                    f"{self._prefix}/{partition}",
                ):
                    self._held.add(partition)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            logger.warning("partition_leases_lost", error=str(exc) or type(exc).__name__)
            await self.close()
        return set(self._held)

    async def close(self) -> None:
        """Give every lease back (ending the connection releases them)."""
        self._held.clear()
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None
