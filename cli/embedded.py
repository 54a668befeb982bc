"""What `agentbus up` owns under its data dir: the dir's lock, the HTTP socket, the embedded servers and their supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import structlog

from bus import BusError, EmbeddedNats
from bus.permissions import RoleCredentials, write_server_config
from projections import EventLogError
from projections.embedded import EmbeddedPostgres
from schemas import Subjects

from .settings import ENDPOINTS_FILE

logger = structlog.get_logger("agentbus")

LOCK_FILE = "agentbus.lock"

RESTART_DELAYS = (0.2, 1.0, 2.0, 4.0, 8.0)
"""Seconds before each restart attempt of a server that died; when the last attempt fails, `up` gives up."""

STABLE_AFTER = 60.0
"""Seconds a restarted server must run before a new death starts the back-off again from the first delay."""

READY_TIMEOUT = 30.0
"""Seconds a restarted server gets to accept connections."""

POLL_INTERVAL = 0.2
"""Seconds between two looks at the servers' processes."""


class DataDirLock:
    """The exclusive use of a data dir by one `agentbus up`.

    Held with `flock`, so the kernel releases it when its holder dies, however
    it dies (kill -9 included): a crashed instance never blocks the next start.
    The file also says who holds it (pid, then URL), for the refusal message.
    The file is never deleted: deleting it would let two instances lock two
    different files of the same name.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or exit naming the instance that holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder(fd)
            os.close(fd)
            raise SystemExit(
                f"agentbus: {self.path.parent} is in use by another `agentbus up` ({holder}); "
                "stop that one first, or pass another --data-dir"
            ) from None
        self._fd = fd
        self.describe(None)

    def describe(self, http_url: str | None) -> None:
        """Record in the lock file who holds it: our pid and, once we serve, our URL."""
        if self._fd is None:
            return
        text = json.dumps({"pid": os.getpid(), "http_url": http_url}).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, text, 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor releases the flock
            self._fd = None

    def _holder(self, fd: int) -> str:
        try:
            found = json.loads(os.pread(fd, 4096, 0) or b"{}")
        except ValueError:
            found = {}
        pid = found.get("pid")
        url = found.get("http_url")
        if url is None:
            # Written by the holder as it announces itself; the lock file may lag a moment behind.
            with contextlib.suppress(OSError, ValueError):
                url = json.loads((self.path.parent / ENDPOINTS_FILE).read_text()).get("http_url")
        return f"pid {pid if pid is not None else 'unknown'}, {url or 'still starting'}"


def bind_http(host: str, port: int) -> socket.socket:
    """Bind the gateway's socket now, before anything starts, or exit saying the port is taken.

    The gateway serves on this very socket, so no other process can take the
    port between the check and the start.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # As uvicorn does: a port whose last connections are in TIME_WAIT is free; one with a listener is not.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(
            f"agentbus: cannot serve HTTP on {host}:{port}: {exc.strerror or exc}; "
            "stop what uses it, or pass another --port (0 picks a free one)"
        ) from None
    sock.set_inheritable(False)
    return sock


class Server(Protocol):
    """An embedded server process: started, watched, restarted and stopped by `agentbus up`."""

    name: str

    @property
    def log_path(self) -> Path: ...

    @property
    def pid(self) -> int | None: ...

    def spawn(self) -> None: ...

    def ready(self) -> bool: ...

    def exit_code(self) -> int | None: ...

    def stop(self) -> None: ...

    def kill(self) -> None: ...

    def stop_leftover(self) -> None: ...


_SERVER_ERRORS = (BusError, EventLogError, OSError)


NATS_CONFIG = "nats.conf"


class EmbeddedServers:
    """The embedded nats-server and PostgreSQL of one data dir (those not replaced by a URL).

    The nats-server lets in only the roles' nkeys (`credentials`), each with
    its permissions under `subjects` (`bus.permissions`); its config is
    written anew at each start, so it follows the subject prefix.
    """

    def __init__(
        self, data_dir: Path, *, nats: bool, postgres: bool, credentials: RoleCredentials, subjects: Subjects
    ) -> None:
        self.postgres = EmbeddedPostgres(data_dir / "pg") if postgres else None
        config = data_dir / "nats" / NATS_CONFIG
        self.nats = EmbeddedNats(data_dir / "nats", config=config) if nats else None
        self._credentials = credentials
        self._subjects = subjects

    @property
    def servers(self) -> list[Server]:
        """In start order: PostgreSQL, then NATS (they stop in reverse)."""
        return [server for server in (self.postgres, self.nats) if server is not None]

    def start(self) -> None:
        """Stop what a killed instance left behind, then start PostgreSQL and NATS.

        Only for the holder of the data dir's lock.
        """
        for server in self.servers:
            server.stop_leftover()
        if self.postgres is not None:
            self.postgres.start()
        if self.nats is not None:
            assert self.nats.config is not None
            write_server_config(self.nats.config, self._credentials, self._subjects)
            self.nats.start()

    def stop(self) -> None:
        """Stop NATS, then PostgreSQL, each within its own bound; safe to call twice."""
        for server in reversed(self.servers):
            server.stop()

    def kill(self) -> None:
        """Kill every server at once (the watchdog's last resort)."""
        for server in reversed(self.servers):
            server.kill()


class ServerFailed(Exception):
    """An embedded server died and could not be restarted."""


async def supervise(servers: list[Server]) -> None:
    """Restart any server whose process dies, with back-off; raise `ServerFailed` once one cannot be.

    A restarted server keeps its port or socket and its data dir, so the
    clients (nats-py, the SQLAlchemy pool, the LISTEN connection) reconnect
    to it by themselves.
    """
    deaths = {server.name: _Deaths() for server in servers}
    while True:
        await asyncio.sleep(POLL_INTERVAL)
        for server in servers:
            code = server.exit_code()
            if code is not None:
                await _restart(server, code, deaths[server.name])


class _Deaths:
    """How many times in a row a server died without running `STABLE_AFTER` seconds in between."""

    def __init__(self) -> None:
        self.count = 0
        self.restarted_at = 0.0

    def next_delays(self) -> Iterator[float]:
        if time.monotonic() - self.restarted_at > STABLE_AFTER:
            self.count = 0
        return iter(RESTART_DELAYS[self.count :])


async def _until_ready(server: Server, timeout: float) -> None:
    """Poll `server` until it accepts connections (a process's readiness has no event to wait on)."""
    deadline = time.monotonic() + timeout
    while True:
        if server.ready():
            return
        if time.monotonic() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.05)


async def _restart(server: Server, code: int, deaths: _Deaths) -> None:
    logger.warning("server_died", server=server.name, pid=server.pid, exit_code=code, log=str(server.log_path))
    error: Exception | None = None
    for delay in deaths.next_delays():
        deaths.count += 1
        await asyncio.sleep(delay)
        try:
            server.spawn()
            await _until_ready(server, READY_TIMEOUT)
        except (*_SERVER_ERRORS, TimeoutError) as exc:
            error = exc
            with contextlib.suppress(*_SERVER_ERRORS):
                server.stop()
            logger.warning(
                "server_restart_failed", server=server.name, attempt=deaths.count, error=str(exc) or "timeout"
            )
            continue
        deaths.restarted_at = time.monotonic()
        logger.warning("server_restarted", server=server.name, pid=server.pid, attempt=deaths.count)
        return
    why = f"the last attempt: {error}" if error is not None else "it keeps dying right after each restart"
    raise ServerFailed(
        f"agentbus: the embedded {server.name} died (exit {code}) and could not be kept running "
        f"after {deaths.count} restart attempts ({why}); see {server.log_path}"
    )
