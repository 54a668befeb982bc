"""The real services a benchmark runs against: nats-server, PostgreSQL and `agentbus up`.

Everything here is synchronous and stopped by context managers, so a failure or
Ctrl-C anywhere in a benchmark still stops what was started, in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import msgspec
from websockets.asyncio.client import connect

from bus.embedded import EmbeddedNats
from cli.settings import ENDPOINTS_FILE, Endpoints
from projections import ensure_database
from projections.database import asyncpg_dsn
from projections.embedded import EmbeddedPostgres

SUBJECT_PREFIX = "agentbusbench"
"""Keeps the benchmark's subjects and command stream apart on a shared, external NATS."""

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Run in a child before exec: the kernel sends it SIGTERM if the benchmark is killed (-9)."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass(frozen=True, slots=True)
class Services:
    nats_url: str
    database_url: str
    origin: str  # "embedded" or "external (...)", for the report
    nats_server: EmbeddedNats | None = None
    """The embedded nats-server, which a benchmark may kill and start again (same port, same store); None when
    `AGENTBUS_NATS_URL` names an external one, which the benchmarks never kill."""


@contextlib.contextmanager
def services(workdir: Path) -> Iterator[Services]:
    """Yield NATS and PostgreSQL: the ones named by `AGENTBUS_*_URL`, else embedded ones in `workdir`."""
    nats_url = os.environ.get("AGENTBUS_NATS_URL") or None
    database_url = os.environ.get("AGENTBUS_DATABASE_URL") or None
    origin = [
        "nats: " + ("external AGENTBUS_NATS_URL" if nats_url else "embedded nats-server"),
        "postgres: " + ("external AGENTBUS_DATABASE_URL" if database_url else "embedded pgserver (Unix socket)"),
    ]
    nats_server: EmbeddedNats | None = None
    with contextlib.ExitStack() as stack:
        if nats_url is None:
            nats_server = EmbeddedNats(workdir / "nats")
            stack.callback(nats_server.stop)
            nats_server.start()
            nats_url = nats_server.url
        if database_url is None:
            postgres = EmbeddedPostgres(workdir / "pg")
            stack.callback(postgres.stop)
            database_url = postgres.start()
        yield Services(nats_url=nats_url, database_url=database_url, origin=", ".join(origin), nats_server=nats_server)


def with_database(url: str, name: str) -> str:
    """Return `url` naming database `name` on the same server (query, e.g. `host=`, kept)."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


@contextlib.contextmanager
def scratch_database(server_url: str, purpose: str) -> Iterator[str]:
    """Create a new, empty database for one benchmark; drop it afterwards."""
    url = with_database(server_url, f"agentbus_bench_{purpose}_{uuid.uuid4().hex[:8]}")
    asyncio.run(ensure_database(url))
    try:
        yield url
    finally:
        try:
            asyncio.run(_drop_database(url))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Best effort: a failure here must not hide the benchmark's own outcome.
            print(f"warning: could not drop scratch database {url!r}: {exc}", file=sys.stderr)


async def _drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    admin = await asyncpg.connect(asyncpg_dsn(with_database(url, "postgres")))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def agentbus_binary() -> str:
    beside = Path(sys.executable).parent / "agentbus"
    if beside.exists():
        return str(beside)
    found = shutil.which("agentbus")
    if found is None:
        raise RuntimeError("the agentbus command is not installed (pip install -e .)")
    return found


@dataclass(frozen=True, slots=True)
class RunningSystem:
    endpoints: Endpoints
    command: str  # the command line and environment, for the report
    log_path: Path
    started_in: float  # seconds from spawn to endpoints.json
    pid: int
    process: subprocess.Popen[bytes] = field(repr=False)

    def cpu_seconds(self) -> float:
        """User + system CPU time the `agentbus up` process has used so far (Linux /proc)."""
        return process_cpu_seconds(self.pid)

    def interrupt(self, timeout: float = 30.0) -> tuple[int | None, float]:
        """Stop it as Ctrl-C does (SIGINT) before the block ends; its exit code (None: killed after `timeout`), seconds."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        try:
            code: int | None = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
            stop_process(self.process)
        return code, time.monotonic() - started


@contextlib.contextmanager
def agentbus_up(
    workdir: Path,
    nats_url: str | None,
    database_url: str | None,
    *,
    args: Sequence[str] = (),
    data_dir_name: str = "up",
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[RunningSystem]:
    """Run `agentbus up --port 0 [args]` as a subprocess on the given services until the block ends.

    A service given as None is `agentbus up`'s own embedded one, under its data dir `workdir / data_dir_name`;
    `env` adds variables (the OTEL_* ones that make it export its spans, `bench.hops`).
    """
    data_dir = workdir / data_dir_name
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [agentbus_binary(), "up", "--data-dir", str(data_dir), "--port", "0", *args]
    urls = {"AGENTBUS_NATS_URL": nats_url, "AGENTBUS_DATABASE_URL": database_url}
    overrides = {
        **{name: url for name, url in urls.items() if url is not None},
        "AGENTBUS_OFFLINE_DELAY": "0",
        "AGENTBUS_SUBJECT_PREFIX": SUBJECT_PREFIX,
        **(env or {}),
    }
    env = {name: value for name, value in os.environ.items() if name not in urls} | overrides
    env.pop("AGENTBUS_API_KEY", None)  # the benchmark client sends no key
    shown = " ".join(f"{k}={_redact(v) if k == 'AGENTBUS_DATABASE_URL' else v}" for k, v in overrides.items())
    command = f"{shown} {' '.join(argv)}"
    log_path = data_dir / "agentbus.log"
    endpoints_path = data_dir / ENDPOINTS_FILE
    started = time.monotonic()
    with open(log_path, "wb") as log_file:
        # A session of its own: Ctrl-C reaches only us, and we stop the child before the services.
        process = subprocess.Popen(
            argv, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent
        )
    try:
        deadline = started + timeout
        while not endpoints_path.exists():
            if process.poll() is not None:
                raise RuntimeError(f"agentbus up exited with {process.returncode}:\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"agentbus up wrote no {endpoints_path} within {timeout}s:\n{_tail(log_path)}")
            time.sleep(0.02)
        endpoints = _read_endpoints(endpoints_path)
        yield RunningSystem(endpoints, command, log_path, time.monotonic() - started, process.pid, process)
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Ask `process` to stop (SIGTERM), kill it if it does not within `timeout`."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid`, from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def _read_endpoints(path: Path) -> Endpoints:
    # The file may be seen between its creation and the end of the write.
    for _ in range(50):
        try:
            return msgspec.json.decode(path.read_bytes(), type=Endpoints)
        except msgspec.DecodeError:
            time.sleep(0.02)
    return msgspec.json.decode(path.read_bytes(), type=Endpoints)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(":" + parts.password + "@", ":***@"))
    return urlunsplit(parts)


R = TypeVar("R")


async def create_sessions(http: httpx.AsyncClient, count: int) -> list[str]:
    """Create `count` sessions through `http` (a client whose base URL is the gateway's); return their ids."""
    session_ids = []
    for _ in range(count):
        response = await http.post("/api/v1/chat/sessions", json={})
        response.raise_for_status()
        session_ids.append(response.json()["session_id"])
    return session_ids


async def runs_on_one_session(
    endpoints: Endpoints, run: Callable[[Any], Awaitable[R]], count: int, *, warmup: int = 1, timeout: float = 120.0
) -> list[R]:
    """Create a session, open its socket, and `run(ws)` `warmup + count` times in sequence; the measured results."""
    async with httpx.AsyncClient(timeout=30.0) as http:
        response = await http.post(f"{endpoints.http_url}/api/v1/chat/sessions", json={})
        response.raise_for_status()
        session_id = response.json()["session_id"]
    ws_url = "ws" + endpoints.http_url.removeprefix("http") + f"/api/v1/chat/ws/{session_id}"
    results: list[R] = []
    async with connect(ws_url, max_size=None, compression=None) as ws:
        await asyncio.wait_for(ws.recv(), timeout)
        for i in range(warmup + count):
            result = await run(ws)
            if i >= warmup:
                results.append(result)
    return results
