"""The `agentbus` command: composes schemas, bus, projections, actors and gateway.

    agentbus up        embedded nats-server + PostgreSQL, the worker and the gateway
    agentbus worker    actors only (external services)
    agentbus gateway   HTTP/WebSocket only (external services)
    agentbus publish   put a chat message on the bus, as another service would
    agentbus migrate   create or upgrade the database schema
    agentbus replay    rebuild a board meeting or outline a session from the log
    agentbus bench     measure latency and throughput against raw baselines
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec
import structlog
import uvicorn

from actors import Worker
from actors.config import Config, ConfigError, load_config
from actors.llm import OfflineProvider
from bus import Bus, BusError, EmbeddedNats, free_port, publish_command
from gateway import GatewayContext, create_app
from projections import Engine, EventLog, ReadModels, create_engine, ensure_database, migrate
from projections.embedded import EmbeddedPostgres
from projections.replay import board_markdown, load_board, session_outline
from schemas import SendMessage, Subjects

log = structlog.get_logger("agentbus")

ENDPOINTS_FILE = "endpoints.json"


class Endpoints(msgspec.Struct, frozen=True, kw_only=True):
    """Where a running `agentbus up` can be reached (written to `<data-dir>/endpoints.json`)."""

    http_url: str
    nats_url: str
    database_url: str


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Environment settings shared by every command."""

    nats_url: str | None
    database_url: str | None
    subject_prefix: str
    api_key: str | None
    offline_delay: float
    ack_wait: float
    answer_timeout: float

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            nats_url=os.environ.get("AGENTBUS_NATS_URL") or None,
            database_url=os.environ.get("AGENTBUS_DATABASE_URL") or None,
            subject_prefix=os.environ.get("AGENTBUS_SUBJECT_PREFIX", "agentbus"),
            api_key=os.environ.get("AGENTBUS_API_KEY") or None,
            offline_delay=float(os.environ.get("AGENTBUS_OFFLINE_DELAY", "0")),
            ack_wait=float(os.environ.get("AGENTBUS_ACK_WAIT", "10")),
            answer_timeout=float(os.environ.get("AGENTBUS_ANSWER_TIMEOUT", "120")),
        )


def configure_logging(level: str = "info") -> None:
    """JSON logs with the context bound at message boundaries (session_id, actor, correlation_id)."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


@contextlib.asynccontextmanager
async def _database(url: str) -> AsyncIterator[Engine]:
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
    api_key: str | None,
    on_ready: Callable[[], None] | None = None,
    worker_ready: asyncio.Event | None = None,
) -> None:
    log_ = EventLog(engine)
    ctx = GatewayContext(
        bus=bus, log=log_, read_models=ReadModels(engine), api_key=api_key, answer_timeout=Settings.from_env().answer_timeout
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
    server = uvicorn.Server(config)
    # Signals are handled by the caller, which stops every part together.
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
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
            on_ready()
        await serving
    finally:
        server.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)
        await log_.close()


async def _until_signal(*tasks: asyncio.Task[None], grace: float = 20.0) -> None:
    """Run `tasks` until SIGINT/SIGTERM or until one of them ends; then stop them all.

    A part that does not stop within `grace` seconds is logged with its stack
    and abandoned, so Ctrl-C always ends the process.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stopper = asyncio.create_task(stop.wait(), name="signals")
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    log.info("stopping", reason="signal" if stopper in done else "a part ended")
    for task in [*tasks, stopper]:
        task.cancel()
    _, stuck = await asyncio.wait(tasks, timeout=grace)
    for task in stuck:
        log.error("shutdown_stuck", task=task.get_name(), stack=[str(frame) for frame in task.get_stack()])
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


async def _run_up(args: argparse.Namespace, settings: Settings, nats_url: str, database_url: str, config: Config) -> None:
    subjects = Subjects(settings.subject_prefix)
    port = args.port or free_port(args.host)
    endpoints_path = Path(args.data_dir) / ENDPOINTS_FILE
    async with _database(database_url) as engine:
        worker_bus = await Bus.connect(nats_url, name="agentbus-worker", subjects=subjects)
        gateway_bus = await Bus.connect(nats_url, name="agentbus-gateway", subjects=subjects)
        http_url = f"http://{args.host}:{port}"

        def announce() -> None:
            endpoints = Endpoints(http_url=http_url, nats_url=nats_url, database_url=database_url)
            endpoints_path.write_bytes(msgspec.json.format(msgspec.json.encode(endpoints)))
            print(f"agentbus is up: {http_url}  (chat page: {http_url}/, endpoints: {endpoints_path})", flush=True)

        worker = Worker(worker_bus, engine, _provider(settings), ack_wait=settings.ack_wait, config=config)
        try:
            await _until_signal(
                asyncio.create_task(worker.run(), name="worker"),
                asyncio.create_task(
                    _serve_gateway(gateway_bus, engine, args.host, port, settings.api_key, announce, worker.ready), name="gateway"
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


def _discover(args: argparse.Namespace, settings: Settings) -> Endpoints | None:
    path = Path(args.data_dir) / ENDPOINTS_FILE
    if path.exists():
        return msgspec.json.decode(path.read_bytes(), type=Endpoints)
    return None


def _require_urls(args: argparse.Namespace, settings: Settings) -> tuple[str, str]:
    found = _discover(args, settings)
    nats_url = settings.nats_url or (found.nats_url if found else None)
    database_url = settings.database_url or (found.database_url if found else None)
    if not nats_url or not database_url:
        raise SystemExit(
            "no services: set AGENTBUS_NATS_URL and AGENTBUS_DATABASE_URL, or run `agentbus up` "
            f"(it writes {Path(args.data_dir) / ENDPOINTS_FILE})"
        )
    return nats_url, database_url


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    config = _config()
    nats_url, database_url = _require_urls(args, settings)

    async def main() -> None:
        async with _database(database_url) as engine:
            bus = await Bus.connect(nats_url, name="agentbus-worker", subjects=Subjects(settings.subject_prefix))
            try:
                worker = Worker(bus, engine, _provider(settings), ack_wait=settings.ack_wait, config=config)
                await _until_signal(asyncio.create_task(worker.run()))
            finally:
                await bus.close()

    asyncio.run(main())
    return 0


def cmd_gateway(args: argparse.Namespace, settings: Settings) -> int:
    nats_url, database_url = _require_urls(args, settings)

    async def main() -> None:
        async with _database(database_url) as engine:
            bus = await Bus.connect(nats_url, name="agentbus-gateway", subjects=Subjects(settings.subject_prefix))
            try:
                task = asyncio.create_task(_serve_gateway(bus, engine, args.host, args.port, settings.api_key))
                await _until_signal(task)
            finally:
                await bus.close()

    asyncio.run(main())
    return 0


def cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    found = _discover(args, settings)
    nats_url = settings.nats_url or (found.nats_url if found else None)
    if not nats_url:
        raise SystemExit("no NATS: set AGENTBUS_NATS_URL or run `agentbus up` first")

    async def main() -> int:
        try:
            bus = await Bus.connect(nats_url, name="agentbus-publish", subjects=Subjects(settings.subject_prefix))
        except BusError as exc:
            raise SystemExit(str(exc)) from None
        try:
            ack = await publish_command(
                bus, args.session, SendMessage(content=args.text, idempotency_key=args.idempotency_key)
            )
        except BusError as exc:
            raise SystemExit(str(exc)) from None
        finally:
            await bus.close()
        print(json.dumps(msgspec.to_builtins(ack)))
        return 0

    return asyncio.run(main())


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    _, database_url = _require_urls(args, settings) if not settings.database_url else (None, settings.database_url)

    async def main() -> None:
        async with _database(database_url):
            pass

    asyncio.run(main())
    print("database schema is up to date")
    return 0


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Rebuild a board or outline a session from the event log alone (only the database is needed)."""
    found = _discover(args, settings)
    database_url = settings.database_url or (found.database_url if found else None)
    if not database_url:
        raise SystemExit("no database: set AGENTBUS_DATABASE_URL, or run `agentbus up` first")

    async def main() -> str:
        engine = create_engine(database_url)
        log_ = EventLog(engine)
        try:
            if args.what == "session":
                return msgspec.json.format(msgspec.json.encode(await session_outline(log_, args.id))).decode()
            view = await load_board(log_, args.id, at=args.at)
            if view is None:
                raise SystemExit(f"board {args.id} not found in the event log")
            return board_markdown(view) if args.format == "markdown" else msgspec.json.encode(view).decode()
        finally:
            await log_.close()
            await engine.dispose()

    print(asyncio.run(main()))
    return 0


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    # bench/ ships with the source tree, not the installed package.
    source_tree = Path(__file__).resolve().parent
    if not (source_tree / "bench" / "run.py").exists():
        raise SystemExit("bench/ is not next to cli.py: run `make bench` from a source checkout")
    sys.path.insert(0, str(source_tree))
    from bench.run import main as bench_main

    return bench_main(args.turns)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentbus", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log-level", default=os.environ.get("AGENTBUS_LOG_LEVEL", "info"))
    sub = parser.add_subparsers(dest="command", required=True)

    def with_data_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--data-dir", default=os.environ.get("AGENTBUS_DATA_DIR", ".agentbus"))
        return p

    up = with_data_dir(sub.add_parser("up", help="run everything on embedded services"))
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    up.set_defaults(func=cmd_up)

    worker = with_data_dir(sub.add_parser("worker", help="run the actors"))
    worker.set_defaults(func=cmd_worker)

    gw = with_data_dir(sub.add_parser("gateway", help="run the HTTP/WebSocket gateway"))
    gw.add_argument("--host", default="127.0.0.1")
    gw.add_argument("--port", type=int, default=8000)
    gw.set_defaults(func=cmd_gateway)

    pub = with_data_dir(sub.add_parser("publish", help="publish a chat message onto the bus"))
    pub.add_argument("--session", required=True)
    pub.add_argument("--idempotency-key")
    pub.add_argument("text")
    pub.set_defaults(func=cmd_publish)

    mig = with_data_dir(sub.add_parser("migrate", help="create or upgrade the database schema"))
    mig.set_defaults(func=cmd_migrate)

    replay = with_data_dir(sub.add_parser("replay", help="rebuild a board or outline a session from the event log"))
    replay.add_argument("what", choices=["board", "session"])
    replay.add_argument("id", help="the board id (= the id of the message that started it) or the session id")
    replay.add_argument("--format", choices=["markdown", "json"], default="markdown", help="board output (default markdown)")
    replay.add_argument("--at", type=int, help="show the board as it stood at this log position")
    replay.set_defaults(func=cmd_replay)

    bench = sub.add_parser("bench", help="run the benchmarks in bench/")
    bench.add_argument("--turns", type=int, default=1000)
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    return int(args.func(args, Settings.from_env()) or 0)


if __name__ == "__main__":
    sys.exit(main())
