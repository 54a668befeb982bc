"""The long-running commands: `up` (embedded services + worker + gateway), `worker`, `gateway`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import msgspec
import structlog
import uvicorn

from actors import Worker
from actors.config import Config, ConfigError, load_config
from actors.llm import OfflineProvider
from bus import Bus, EmbeddedNats
from gateway import GatewayContext, create_app
from projections import Engine, EventLog, ReadModels, create_engine, ensure_database, migrate
from projections.embedded import EmbeddedPostgres
from schemas import Subjects

from .settings import ENDPOINTS_FILE, Endpoints, Settings, require_urls

logger = structlog.get_logger("agentbus")


@contextlib.asynccontextmanager
async def database(url: str) -> AsyncIterator[Engine]:
    await ensure_database(url)
    engine = create_engine(url)
    await migrate(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _serve_gateway(
    bus: Bus,
    engine: Engine,
    host: str,
    port: int,
    settings: Settings,
    on_ready: Callable[[int], None] | None = None,
    worker_ready: asyncio.Event | None = None,
) -> None:
    """Serve the gateway on `host:port` (0: a free port), calling `on_ready(bound port)` once it answers."""
    event_log = EventLog(engine)
    ctx = GatewayContext(
        bus=bus,
        event_log=event_log,
        read_models=ReadModels(engine),
        api_key=settings.api_key,
        answer_timeout=settings.answer_timeout,
    )
    config = uvicorn.Config(
        create_app(ctx),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve(), name="uvicorn")
    try:
        while not server.started:
            if serving.done():
                await serving
                raise SystemExit(f"gateway could not listen on {host}:{port}")
            await asyncio.sleep(0.02)
        if worker_ready is not None:
            # endpoints.json promises a system that answers (creates a session), not only a listening socket.
            await worker_ready.wait()
        if on_ready is not None:
            # The socket uvicorn bound, so port 0 never races another process for a port.
            on_ready(server.servers[0].sockets[0].getsockname()[1])
        await serving
    finally:
        server.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)
        await event_log.close()


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the caller stops every part together, in order.

    uvicorn's `capture_signals` replaces the process's SIGINT/SIGTERM handlers
    while serving and raises the captured signals again once it stops, which
    would stop the gateway alone and then interrupt the orderly shutdown.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _exit_now() -> None:
    logger.error("shutdown_timed_out")
    os._exit(1)


async def _until_signal(*tasks: asyncio.Task[None], grace: float = 20.0) -> None:
    """Run `tasks` until SIGINT/SIGTERM or until one of them ends; then stop them all.

    A part that does not stop within `grace` seconds is logged with its stack
    and abandoned; and if the process has still not ended `grace` seconds
    later, a watchdog ends it. Ctrl-C always ends the process, and nothing
    accepted is lost by that: commands wait in JetStream, facts are in the log.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stopper = asyncio.create_task(stop.wait(), name="signals")
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    logger.info("stopping", reason="signal" if stopper in done else "a part ended")
    watchdog = threading.Timer(2 * grace, _exit_now)
    watchdog.daemon = True
    watchdog.start()
    for task in [*tasks, stopper]:
        task.cancel()
    _, stuck = await asyncio.wait(tasks, timeout=grace)
    for task in stuck:
        logger.error("shutdown_stuck", task=task.get_name(), stack=[str(frame) for frame in task.get_stack()])
    for task in done:
        if task is not stopper and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


def _provider(settings: Settings) -> OfflineProvider:
    return OfflineProvider(delay=settings.offline_delay)


def _config() -> Config:
    """Load the agents' configuration ($AGENTBUS_CONFIG or the packaged default), or exit saying what is wrong."""
    try:
        return load_config()
    except ConfigError as exc:
        raise SystemExit(f"agentbus: {exc}") from None


async def _run_up(
    args: argparse.Namespace, settings: Settings, nats_url: str, database_url: str, config: Config
) -> None:
    subjects = Subjects(settings.subject_prefix)
    endpoints_path = Path(args.data_dir) / ENDPOINTS_FILE
    async with database(database_url) as engine:
        worker_bus = await Bus.connect(nats_url, name="agentbus-worker", subjects=subjects)
        gateway_bus = await Bus.connect(nats_url, name="agentbus-gateway", subjects=subjects)

        def announce(port: int) -> None:
            http_url = f"http://{args.host}:{port}"
            endpoints = Endpoints(http_url=http_url, nats_url=nats_url, database_url=database_url)
            endpoints_path.write_bytes(msgspec.json.format(msgspec.json.encode(endpoints)))
            print(f"agentbus is up: {http_url}  (chat page: {http_url}/, endpoints: {endpoints_path})", flush=True)

        worker = Worker(worker_bus, engine, _provider(settings), ack_wait=settings.ack_wait, config=config)
        try:
            await _until_signal(
                asyncio.create_task(worker.run(), name="worker"),
                asyncio.create_task(
                    _serve_gateway(gateway_bus, engine, args.host, args.port, settings, announce, worker.ready),
                    name="gateway",
                ),
            )
        finally:
            endpoints_path.unlink(missing_ok=True)
            await gateway_bus.close()
            await worker_bus.close()
    print("agentbus stopped", flush=True)


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    config = _config()  # before any service starts: a bad file fails fast
    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    args.data_dir = str(data_dir)
    nats_server = None if settings.nats_url else EmbeddedNats(data_dir / "nats")
    postgres = None if settings.database_url else EmbeddedPostgres(data_dir / "pg")
    try:
        if nats_server is not None:
            nats_server.start()
        nats_url = settings.nats_url or nats_server.url  # type: ignore[union-attr]
        database_url = settings.database_url or postgres.start()  # type: ignore[union-attr]
        asyncio.run(_run_up(args, settings, nats_url, database_url, config))
    finally:
        if nats_server is not None:
            nats_server.stop()
        if postgres is not None:
            postgres.stop()
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    config = _config()
    nats_url, database_url = require_urls(args, settings)

    async def main() -> None:
        async with database(database_url) as engine:
            bus = await Bus.connect(nats_url, name="agentbus-worker", subjects=Subjects(settings.subject_prefix))
            try:
                worker = Worker(bus, engine, _provider(settings), ack_wait=settings.ack_wait, config=config)
                await _until_signal(asyncio.create_task(worker.run()))
            finally:
                await bus.close()

    asyncio.run(main())
    return 0


def cmd_gateway(args: argparse.Namespace, settings: Settings) -> int:
    nats_url, database_url = require_urls(args, settings)

    async def main() -> None:
        async with database(database_url) as engine:
            bus = await Bus.connect(nats_url, name="agentbus-gateway", subjects=Subjects(settings.subject_prefix))
            try:
                task = asyncio.create_task(_serve_gateway(bus, engine, args.host, args.port, settings))
                await _until_signal(task)
            finally:
                await bus.close()

    asyncio.run(main())
    return 0
