"""A LISTEN on the events channel that raises a flag; it only ever makes a follower look sooner.

Followers still read on a timer: a notification lost while the connection was
down delays them, never blocks them.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

import asyncpg
import structlog

from ._batch import CHANNEL

logger = structlog.get_logger(__name__)

APPLICATION_NAME = "agentbus-listen"
"""`application_name` of listening connections, so an operator (or a test) can find them."""

_RECONNECT_DELAY = 0.5
_PING_INTERVAL = 30.0  # a peer that vanished without closing the socket is found this late
_PING_TIMEOUT = 5.0
_DRIVER_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


class Wakeup:
    """Own one LISTEN connection for as long as the `async with` block runs.

    `wait` returns early once a notification arrived since the last `clear`; a
    dropped connection is re-established, and the flag is raised after each
    (re)connect so the follower catches up on what it may have missed.
    """

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._flag = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Wakeup:
        self._task = asyncio.create_task(self._listen(), name="agentbus-listen")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            # asyncio.wait never raises the task's CancelledError, so ours still propagates.
            await asyncio.wait([self._task])

    def clear(self) -> None:
        """Forget earlier notifications: call it just before reading."""
        self._flag.clear()

    async def wait(self, timeout: float) -> bool:
        """Wait until notified or `timeout` seconds passed; return whether notified."""
        try:
            async with asyncio.timeout(timeout):
                await self._flag.wait()
        except TimeoutError:
            return False
        return True

    async def _listen(self) -> None:
        while True:
            try:
                conn = await asyncpg.connect(self._dsn, server_settings={"application_name": APPLICATION_NAME})
            except _DRIVER_ERRORS as exc:
                logger.warning("listen_connect_failed", error=str(exc))
                await asyncio.sleep(_RECONNECT_DELAY)
                continue
            try:
                await self._serve(conn)
                logger.warning("listen_connection_lost")
            except _DRIVER_ERRORS as exc:
                logger.warning("listen_connection_lost", error=str(exc))
            finally:
                await _close(conn)

    async def _serve(self, conn: asyncpg.Connection) -> None:
        """Return when `conn` is lost; raise when it fails."""
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        await conn.add_listener(CHANNEL, self._notified)
        self._flag.set()
        while not conn.is_closed():
            try:
                async with asyncio.timeout(_PING_INTERVAL):
                    await lost.wait()
                return
            except TimeoutError:
                await asyncio.wait_for(conn.execute("SELECT 1"), _PING_TIMEOUT)

    def _notified(self, _conn: object, _pid: int, _channel: str, _payload: str) -> None:
        self._flag.set()


async def _close(conn: asyncpg.Connection) -> None:
    try:
        await conn.close(timeout=_PING_TIMEOUT)
    except _DRIVER_ERRORS:
        pass  # already broken; terminate below frees what is left
    finally:
        if not conn.is_closed():
            conn.terminate()
