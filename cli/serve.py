"""The long-running commands `worker` and `gateway`, and the parts `up` (cli/up.py) composes.

The gateway's server, signal handling, the watchdog and bounded stops live
here, so that `up`, `worker` and `gateway` stop the same way: each step
bounded, nothing final recorded for work that is cut.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

import structlog
import uvicorn

from actors import Worker
from actors.config import Config, ConfigError, load_config
from actors.llm import OfflineProvider
from bus import Bus
from bus.origin import Origin
from gateway import GatewayContext, create_app
from gateway.auth import JwtKeys
from projections import Engine, EventLog, ReadModels
from schemas import Subjects

from .credentials import load_credential
from .database import open_database
from .embedded import EmbeddedServers, ServerFailed, bind_http
from .settings import Settings, require_urls

logger = structlog.get_logger("agentbus")

WORKER_STOP = 2.0
"""Seconds the worker gets to stop taking commands and cut its in-flight steps; then it is abandoned."""

GATEWAY_STOP = 1
"""Seconds open HTTP requests and WebSockets get to end once the gateway stops (then uvicorn cancels them)."""

CLIENT_CLOSE = 0.5
"""Seconds to flush and close each NATS connection and the database pool."""

WATCHDOG = 10.0
"""Seconds after the stop began at which the process ends whatever is stuck (the bounds above add up to less)."""


async def bounded(what: str, close: Callable[[], Awaitable[object]], timeout: float) -> None:
    """Await `close()` for at most `timeout` seconds; a failure or overrun is one line, never a stop."""
    try:
        async with asyncio.timeout(timeout):
            await close()
    except TimeoutError:
        print(f"agentbus: {what} did not close within {timeout:g}s; left behind", flush=True)
    except Exception as exc:
        print(f"agentbus: {what} failed to close: {exc}", flush=True)


def jwt_keys(settings: Settings) -> JwtKeys | None:
    """The key users' tokens are verified with, as the settings name it; exit saying why if it cannot be read."""
    try:
        return JwtKeys.load(
            secret=settings.jwt_secret,
            public_key_file=settings.jwt_public_key_file,
            jwks_file=settings.jwt_jwks_file,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
    except ValueError as exc:
        raise SystemExit(f"agentbus: {exc}") from None


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the caller stops every part together, in order.

    uvicorn's `capture_signals` replaces the process's SIGINT/SIGTERM handlers
    while serving and raises the captured signals again once it stops, which
    would stop the gateway alone and then interrupt the orderly shutdown.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class GatewayServer:
    """The HTTP/WebSocket gateway, served on a socket bound beforehand, stopped by its owner in two steps."""

    def __init__(self, bus: Bus, engine: Engine, listener: socket.socket, settings: Settings) -> None:
        self.event_log = EventLog(engine)
        ctx = GatewayContext(
            bus=bus,
            event_log=self.event_log,
            read_models=ReadModels(engine),
            api_key=settings.api_key,
            jwt=jwt_keys(settings),
            answer_timeout=settings.answer_timeout,
        )
        self._app = create_app(ctx)
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=GATEWAY_STOP,
        )
        self._server = _Server(config)
        self._listener = listener
        self.port = int(listener.getsockname()[1])

    async def run(
        self, on_ready: Callable[[int], None] | None = None, worker_ready: asyncio.Event | None = None
    ) -> None:
        """Serve until `stop` (or cancellation), calling `on_ready(port)` once it answers."""
        async with self._app.state.mcp.running():  # uvicorn runs no lifespan: the app's parts run here
            await self._serve(on_ready, worker_ready)

    async def _serve(self, on_ready: Callable[[int], None] | None, worker_ready: asyncio.Event | None) -> None:
        serving = asyncio.create_task(self._server.serve(sockets=[self._listener]), name="uvicorn")
        try:
            while not self._server.started:
                if serving.done():
                    serving.result()
                    raise SystemExit(f"agentbus: the gateway could not serve on port {self.port}")
                await asyncio.sleep(0.02)
            if worker_ready is not None:
                # endpoints.json promises a system that answers (creates a session), not only a listening socket.
                await worker_ready.wait()
            if on_ready is not None:
                on_ready(self.port)
            # Not `await serving`: cancelling us would cancel uvicorn too, and skip its graceful shutdown.
            await asyncio.wait([serving])
            serving.result()
        finally:
            self._server.should_exit = True
            await asyncio.wait([serving])
            await self.event_log.close()

    def stop_intake(self) -> None:
        """Accept no new connection; the open ones are served until `stop`."""
        for server in self._server.servers:
            server.close()

    def stop(self) -> None:
        """Close the open connections (WebSockets get 1012, "service restart") and end `run`."""
        self._server.should_exit = True


async def stop_task(task: asyncio.Task[None], timeout: float, *, cancel: bool = True) -> None:
    """Cancel `task` (unless it was asked to stop another way) and wait for it at most `timeout` seconds."""
    if cancel:
        task.cancel()
    done, _ = await asyncio.wait([task], timeout=timeout)
    if not done:
        print(f"agentbus: the {task.get_name()} did not stop within {timeout:g}s; abandoned", flush=True)
        logger.warning("shutdown_stuck", task=task.get_name(), stack=[str(frame) for frame in task.get_stack()])
        task.cancel()


def raise_failure(tasks: list[asyncio.Task[None]]) -> None:
    """Raise the error of the first of `tasks` that ended by itself (a stop that was not asked for)."""
    for task in tasks:
        if not task.done() or task.cancelled():
            continue
        exc = task.exception()
        if isinstance(exc, ServerFailed):
            raise SystemExit(str(exc))
        if exc is not None:
            raise exc
        raise SystemExit(f"agentbus: the {task.get_name()} stopped by itself")


class Signals:
    """SIGINT/SIGTERM as an awaitable: the first one starts the stop, later ones are ignored (it is bounded)."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.received: asyncio.Future[str] = loop.create_future()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if not self.received.done():
            self.received.set_result(sig.name)

    async def first_of(self, tasks: list[asyncio.Task[None]]) -> str | None:
        """Wait for a signal or for one of `tasks` to end; return the signal's name, or None if a task ended."""
        waiting: list[asyncio.Future[Any]] = [*tasks, self.received]
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        return self.received.result() if self.received.done() else None


class Watchdog:
    """Ends the process if a stop, once begun, has not ended it within `WATCHDOG` seconds."""

    def __init__(self, servers: EmbeddedServers | None = None) -> None:
        self._servers = servers
        self._timer: threading.Timer | None = None

    def start(self) -> None:
        self._timer = threading.Timer(WATCHDOG, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _fire(self) -> None:
        print(f"agentbus: still not stopped after {WATCHDOG:g}s; exiting now", flush=True)
        if self._servers is not None:
            self._servers.kill()
        os._exit(1)


def offline_provider(settings: Settings) -> OfflineProvider:
    return OfflineProvider(delay=settings.offline_delay)


def config_or_exit() -> Config:
    """Load the agents' configuration ($AGENTBUS_CONFIG or the packaged default), or exit saying what is wrong."""
    try:
        return load_config()
    except ConfigError as exc:
        raise SystemExit(f"agentbus: {exc}") from None


async def _run_alone(name: str, run: Callable[[], Coroutine[Any, Any, None]], timeout: float) -> None:
    """Run one part until SIGINT/SIGTERM (or until it ends by itself), then stop it within `timeout` seconds."""
    signals = Signals()
    task = asyncio.create_task(run(), name=name)
    if await signals.first_of([task]) is None:
        raise_failure([task])
    await stop_task(task, timeout)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    config = config_or_exit()
    nats_url, database_url = require_urls(args, settings)

    if not settings.gateway_keys:
        # Not an error: a worker served only by outside services needs none.
        logger.warning("no_gateway_keys", effect="every command acts as the service that sent it, none as a user")

    async def main() -> None:
        engine = await open_database(database_url, settings.subject_prefix)
        try:
            bus = await Bus.connect(
                nats_url,
                name="agentbus-worker",
                subjects=Subjects(settings.subject_prefix),
                credential=load_credential(settings.nats_credentials),
                origin=Origin(trusted=settings.gateway_keys, services=settings.service_keys),
            )
            try:
                worker = Worker(bus, engine, offline_provider(settings), ack_wait=settings.ack_wait, config=config)
                await _run_alone("worker", worker.run, WORKER_STOP)
            finally:
                await bounded("the NATS connection", bus.close, CLIENT_CLOSE)
        finally:
            await bounded("the database pool", engine.dispose, CLIENT_CLOSE)

    asyncio.run(main())
    return 0


def cmd_gateway(args: argparse.Namespace, settings: Settings) -> int:
    nats_url, database_url = require_urls(args, settings)
    listener = bind_http(args.host, args.port)

    credential = load_credential(settings.nats_credentials)
    if credential is None:
        logger.warning("no_nats_credentials", effect="workers take this gateway's users for the service they act as")

    async def main() -> None:
        engine = await open_database(database_url, settings.subject_prefix)
        try:
            bus = await Bus.connect(
                nats_url,
                name="agentbus-gateway",
                subjects=Subjects(settings.subject_prefix),
                credential=credential,
                origin=Origin(signer=credential),
            )
            try:
                gateway = GatewayServer(bus, engine, listener, settings)
                await _run_alone("gateway", gateway.run, GATEWAY_STOP + 0.5)
            finally:
                await bounded("the NATS connection", bus.close, CLIENT_CLOSE)
        finally:
            await bounded("the database pool", engine.dispose, CLIENT_CLOSE)

    try:
        asyncio.run(main())
    finally:
        listener.close()
    return 0
