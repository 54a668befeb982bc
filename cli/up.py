"""`agentbus up`: everything on embedded services, one instance per data dir, stopped in order.

`up` stops in order, each step bounded, on SIGINT/SIGTERM (Ctrl-C reaches the
whole foreground process group; the embedded servers run in sessions of their
own, so only we receive it): no new HTTP connection, then the worker (it stops
taking commands and cuts its in-flight steps without recording anything final:
their commands stay unacknowledged in JetStream and resume from the log at the
next start), then the gateway, the NATS and database clients, nats-server,
PostgreSQL. With `--llm local` a local model server starts first and stops last.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import msgspec

from actors import Worker
from actors.config import Config, LLMEndpoint
from bus import Bus
from bus.credentials import Credential
from bus.origin import Origin
from bus.permissions import NatsRole, RoleCredentials, ensure_credentials
from schemas import Subjects

from .credentials import load_credential
from .database import open_database
from .embedded import DataDirLock, EmbeddedServers, bind_http, supervise
from .local_llm import MODEL_ALIAS, LocalLLM, LocalLLMError
from .serve import (
    CLIENT_CLOSE,
    GATEWAY_STOP,
    WORKER_STOP,
    GatewayServer,
    Signals,
    Watchdog,
    bounded,
    config_or_exit,
    offline_provider,
    raise_failure,
    stop_task,
)
from .settings import (
    CREDENTIALS_ENV,
    ENDPOINTS_FILE,
    GATEWAY_KEYS_ENV,
    SERVICE_KEYS_ENV,
    Endpoints,
    Settings,
    format_service_keys,
)
from .worker_processes import WorkerProcesses

WORKERS_STOP = WORKER_STOP + 2 * CLIENT_CLOSE + 1.0
"""Seconds `agentbus worker` children get to stop by themselves (their own bounded stop, then their clients)."""


async def _run_up(
    args: argparse.Namespace,
    settings: Settings,
    config: Config,
    servers: EmbeddedServers,
    credentials: RoleCredentials,
    listener: socket.socket,
    lock: DataDirLock,
    watchdog: Watchdog,
) -> None:
    signals = Signals()
    nats_url = settings.nats_url or (servers.nats.url if servers.nats else "")
    database_url = settings.database_url or (servers.postgres.url if servers.postgres else "")
    subjects = Subjects(settings.subject_prefix)
    endpoints_path = Path(args.data_dir) / ENDPOINTS_FILE
    # The gateway signs its users' principals with its nkey, on any NATS; the workers believe that key,
    # and take what the service credential of up signed for the service `service` (the others' by their names).
    signer = credentials.of("gateway")
    trusted = settings.gateway_keys | {signer.public_key}
    services = {"service": credentials.of("service").public_key, **settings.service_keys}
    external = load_credential(settings.nats_credentials)

    def credential(role: NatsRole) -> Credential | None:
        """The embedded NATS's credential of `role`; on an external NATS, the one the environment names."""
        return credentials.of(role) if servers.nats is not None else external

    def announce(port: int) -> None:
        http_url = f"http://{args.host}:{port}"
        service = str(credentials.service) if servers.nats is not None else None
        endpoints = Endpoints(http_url=http_url, nats_url=nats_url, database_url=database_url, nats_credentials=service)
        # Written whole, then renamed: a reader never sees a half-written file.
        partial = endpoints_path.with_suffix(".partial")
        partial.write_bytes(msgspec.json.format(msgspec.json.encode(endpoints)))
        partial.replace(endpoints_path)
        lock.describe(http_url)
        print(f"agentbus is up: {http_url}  (chat page: {http_url}/, endpoints: {endpoints_path})", flush=True)

    processes: WorkerProcesses | None = None
    background: list[asyncio.Task[None]] = []
    try:
        async with contextlib.AsyncExitStack() as clients:
            # Closed in reverse: the NATS connections, then the pool, all before their servers stop.
            engine = await open_database(database_url, settings.subject_prefix)
            clients.push_async_callback(bounded, "the database pool", engine.dispose, CLIENT_CLOSE)
            gateway_bus = await Bus.connect(
                nats_url,
                name="agentbus-gateway",
                subjects=subjects,
                credential=credential("gateway"),
                origin=Origin(signer=signer),
            )
            clients.push_async_callback(bounded, "the gateway's NATS connection", gateway_bus.close, CLIENT_CLOSE)
            gateway = GatewayServer(gateway_bus, engine, listener, settings)
            supervisor_task = asyncio.create_task(supervise(servers.servers), name="supervisor")
            ready = asyncio.Event()
            if args.workers > 1:
                worker_credential = credential("worker")
                urls = {
                    "AGENTBUS_NATS_URL": nats_url,
                    "AGENTBUS_DATABASE_URL": database_url,
                    CREDENTIALS_ENV: "" if worker_credential is None else str(worker_credential.path),
                    GATEWAY_KEYS_ENV: ",".join(sorted(trusted)),
                    SERVICE_KEYS_ENV: format_service_keys(services),
                }
                processes = WorkerProcesses(args.workers, urls, Path(args.data_dir))
                processes.start()
                clients.push_async_callback(processes.stop, WORKERS_STOP)  # also when a start step fails
                worker_task = asyncio.create_task(processes.supervise(), name="worker processes")
                background.append(asyncio.create_task(processes.ready(engine, subjects.prefix, ready)))
            else:
                worker_bus = await Bus.connect(
                    nats_url,
                    name="agentbus-worker",
                    subjects=subjects,
                    credential=credential("worker"),
                    origin=Origin(trusted=trusted, services=services),
                )
                clients.push_async_callback(bounded, "the worker's NATS connection", worker_bus.close, CLIENT_CLOSE)
                worker = Worker(
                    worker_bus, engine, offline_provider(settings), ack_wait=settings.ack_wait, config=config
                )
                worker_task = asyncio.create_task(worker.run(), name="worker")
                ready = worker.ready
            gateway_task = asyncio.create_task(gateway.run(announce, ready), name="gateway")
            tasks = [worker_task, gateway_task, supervisor_task]

            reason = await signals.first_of(tasks)
            ended = [task for task in tasks if task.done()]  # before we stop the others
            print(f"agentbus: stopping ({reason or 'a part ended'})", flush=True)
            watchdog.start()
            endpoints_path.unlink(missing_ok=True)
            supervisor_task.cancel()  # from now on a server that ends is one we stop
            await asyncio.wait([supervisor_task])
            gateway.stop_intake()
            await stop_task(worker_task, WORKER_STOP)
            if processes is not None:
                await processes.stop(WORKERS_STOP)
            for task in background:
                task.cancel()
            gateway.stop()
            await stop_task(gateway_task, GATEWAY_STOP + 0.5, cancel=False)
            if reason is None:
                raise_failure(ended)
    finally:
        endpoints_path.unlink(missing_ok=True)
        servers.stop()  # NATS, then PostgreSQL, once their clients are closed
    print("agentbus stopped", flush=True)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While starting (before the event loop handles signals), SIGTERM stops us like Ctrl-C, servers included."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _with_local_model(config: Config, base_url: str, model: str) -> Config:
    """The configuration with its `default` endpoint on the local model server (what every agent and expert uses)."""
    local = LLMEndpoint(kind="openai", base_url=base_url, model=model, timeout=120.0)
    return msgspec.structs.replace(config, llm={**config.llm, "default": local})


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    config = config_or_exit()  # before any service starts: a bad file fails fast
    if args.workers < 1:
        raise SystemExit("agentbus: --workers needs at least 1")
    if args.workers > 1 and args.llm == "local":
        raise SystemExit("agentbus: --llm local serves the worker of `up` itself; use it without --workers")
    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    args.data_dir = str(data_dir)
    lock = DataDirLock(data_dir)
    lock.acquire()  # a data dir in use is refused before anything else: the running instance is left alone
    try:
        listener = bind_http(args.host, args.port)  # a busy port is refused before anything starts
        # Made once, kept with the data: the seeds of the roles (0600), also for an external NATS (the gateway signs).
        credentials = ensure_credentials(data_dir / "nats")
        servers = EmbeddedServers(
            data_dir,
            nats=not settings.nats_url,
            postgres=not settings.database_url,
            credentials=credentials,
            subjects=Subjects(settings.subject_prefix),
        )
        watchdog = Watchdog(servers)
        model = LocalLLM(log_path=data_dir / "llm.log") if args.llm == "local" else None
        try:
            with _sigterm_as_interrupt():
                if model is not None:
                    model.ensure_built()  # once per machine (about 15 minutes); then cached
                    config = _with_local_model(config, model.start(), MODEL_ALIAS)
                    print(f"agentbus: the local model {MODEL_ALIAS} serves at {model.base_url}", flush=True)
                servers.start()
            asyncio.run(_run_up(args, settings, config, servers, credentials, listener, lock, watchdog))
        except KeyboardInterrupt:
            print("agentbus: interrupted while starting; stopped", file=sys.stderr, flush=True)
            return 130
        except LocalLLMError as exc:
            raise SystemExit(f"agentbus: {exc}") from None
        finally:
            if model is not None:
                model.stop()
            servers.stop()
            listener.close()
            watchdog.cancel()  # only now: leaving asyncio.run waits for what the stop abandoned
    finally:
        lock.release()
    return 0
