"""Who is live and who owns which command partition, through PostgreSQL advisory locks.

Each worker holds, on one connection of its own, a *membership* lock
(`hashtext('agentbus-workers/<prefix>')`, its member number) and one lock per
command partition it owns (`PARTITION_CLASS`, `hashtext('<prefix>/<lease>')`, the
lease named by the partition's layout: `<n>`, or `g<generation>/<n>` once the
partition count was changed).
The live workers of a prefix are the holders of membership locks, read from
`pg_locks`. PostgreSQL releases every lock when the connection ends, so a
worker that dies (even with kill -9) leaves the membership and frees its
partitions at once; a host that vanishes without closing its connections is
found by TCP keepalives within `failover_seconds`. No lease timer, no
membership protocol of our own.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Iterable

import asyncpg
import structlog

from schemas import Layout

from . import _locks
from .database import Engine, asyncpg_dsn

logger = structlog.get_logger(__name__)

_MEMBERS = """
    SELECT objid::bigint FROM pg_locks
    WHERE locktype = 'advisory' AND objsubid = 2 AND granted AND classid = (hashtext($1))::oid
"""


class LeasesLost(Exception):
    """The lease connection failed: this process no longer holds any lease (and is no longer a member)."""


class PartitionLeases:
    """This process's membership among the workers of `prefix`, and the command partitions it holds."""

    def __init__(self, engine: Engine, prefix: str, *, failover_seconds: float = 10.0) -> None:
        self._dsn = asyncpg_dsn(engine.url)
        self._prefix = prefix
        self._members_key = _members_key(prefix)
        self._failover = failover_seconds
        self._conn: asyncpg.Connection | None = None
        self._held: set[int] = set()
        self._layout = Layout(0)
        self.member = 0
        """This process's member number while it is a member (0: not one)."""

    def use(self, layout: Layout) -> None:
        """Lease the partitions of `layout` from now on (release those of the previous one first)."""
        if self._held:
            raise RuntimeError(f"partitions {sorted(self._held)} of the previous layout are still held")
        self._layout = layout

    @property
    def held(self) -> set[int]:
        return set(self._held)

    async def members(self) -> list[int]:
        """Join if not a member yet, then return the member numbers of every live worker (this one included).

        Raises `LeasesLost` if the lease connection failed; every lease went
        with it, and the next call joins again with a new connection.
        """
        async with self._bounded():
            conn = await self._connection()
            while not self.member:
                candidate = random.randint(1, 2**31 - 1)
                if await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1), $2)", self._members_key, candidate):
                    self.member = candidate
            return sorted(int(row[0]) for row in await conn.fetch(_MEMBERS, self._members_key))

    async def claim(self, partitions: Iterable[int]) -> set[int]:
        """Try to take each of `partitions` not held yet; return the ones held now (a partition still held by
        another worker is not taken: it hands it over first)."""
        async with self._bounded():
            conn = await self._connection()
            for partition in partitions:
                if partition not in self._held and await conn.fetchval(
                    "SELECT pg_try_advisory_lock($1, hashtext($2))", _locks.PARTITION_CLASS, self._key(partition)
                ):
                    self._held.add(partition)
        return set(self._held)

    async def release(self, partition: int) -> None:
        """Give one partition back (after its work was handed over)."""
        if partition not in self._held:
            return
        async with self._bounded():
            conn = await self._connection()
            await conn.fetchval(
                "SELECT pg_advisory_unlock($1, hashtext($2))", _locks.PARTITION_CLASS, self._key(partition)
            )
        self._held.discard(partition)

    async def close(self) -> None:
        """Leave and give every lease back (ending the connection releases them)."""
        self._held.clear()
        self.member = 0
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None

    def _key(self, partition: int) -> str:
        return f"{self._prefix}/{self._layout.lease(partition)}"

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._held.clear()
            self.member = 0
            # Keepalives let PostgreSQL notice a worker whose host vanished (no FIN) and free its
            # leases within the failover bound; over a Unix socket they do not apply, nor are needed.
            idle = max(1, int(self._failover / 3))
            self._conn = await asyncpg.connect(
                self._dsn,
                server_settings={
                    "application_name": "agentbus-leases",
                    "tcp_keepalives_idle": str(idle),
                    "tcp_keepalives_interval": "1",
                    "tcp_keepalives_count": str(max(1, int(self._failover - idle) // 2)),
                },
            )
        return self._conn

    @contextlib.asynccontextmanager
    async def _bounded(self) -> AsyncIterator[None]:
        """Run a lease operation within half the failover bound; any failure ends the connection (`LeasesLost`).

        A worker must not believe it holds partitions longer than the others
        wait before taking them: a lease query that hangs counts as a lost connection.
        """
        try:
            async with asyncio.timeout(self._failover / 2):
                yield
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            logger.warning("partition_leases_lost", error=reason)
            await self.close()
            raise LeasesLost(reason) from exc


async def live_workers(engine: Engine, prefix: str) -> list[int]:
    """The member numbers of the workers of `prefix` that are live now (see `PartitionLeases.members`)."""
    conn = await asyncpg.connect(asyncpg_dsn(engine.url), server_settings={"application_name": "agentbus-members"})
    try:
        return sorted(int(row[0]) for row in await conn.fetch(_MEMBERS, _members_key(prefix)))
    finally:
        await conn.close()


def _members_key(prefix: str) -> str:
    return f"agentbus-workers/{prefix}"
