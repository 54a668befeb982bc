"""The one-shot commands: `publish`, `migrate`, `projections rebuild`, `replay`, `bench`."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import msgspec

from bus import Bus, BusError, publish_command
from projections import EventLog, Projector, create_engine
from projections.replay import board_markdown, load_board, load_team, session_outline, team_markdown
from schemas import SendMessage, Subjects

from .serve import database
from .settings import Settings, database_url, discover


def cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    found = discover(args, settings)
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
    url = database_url(args, settings)

    async def main() -> None:
        async with database(url):
            pass

    asyncio.run(main())
    print("database schema is up to date")
    return 0


def cmd_projections(args: argparse.Namespace, settings: Settings) -> int:
    """Recreate the read models from the event log (identical to what the projector built live)."""
    url = database_url(args, settings)

    async def main() -> None:
        async with database(url) as engine:
            event_log = EventLog(engine)
            try:
                await Projector(engine, event_log).rebuild()
            finally:
                await event_log.close()

    asyncio.run(main())
    print("read models rebuilt from the event log")
    return 0


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Rebuild a board or a team, or outline a session, from the event log alone (only the database is needed)."""
    url = database_url(args, settings)

    async def main() -> str:
        engine = create_engine(url)
        event_log = EventLog(engine)
        try:
            if args.what == "session":
                return msgspec.json.format(msgspec.json.encode(await session_outline(event_log, args.id))).decode()
            if args.what == "team":
                team = await load_team(event_log, args.id, at=args.at)
                if team is None:
                    raise SystemExit(f"team {args.id} not found in the event log")
                return team_markdown(team) if args.format == "markdown" else msgspec.json.encode(team).decode()
            view = await load_board(event_log, args.id, at=args.at)
            if view is None:
                raise SystemExit(f"board {args.id} not found in the event log")
            return board_markdown(view) if args.format == "markdown" else msgspec.json.encode(view).decode()
        finally:
            await event_log.close()
            await engine.dispose()

    print(asyncio.run(main()))
    return 0


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    """Run `python -m bench.run` in the source tree, with the arguments given after `bench`.

    The benchmarks are no part of the product: they ship with the source tree
    only, and run in a child process so that the product never imports them.
    """
    source_tree = Path(__file__).resolve().parents[1]
    if not (source_tree / "bench" / "run.py").is_file():
        raise SystemExit(
            f"agentbus bench needs the source tree: there is no bench/ in {source_tree} "
            "(an installed package ships without it); run `make bench` from a checkout"
        )
    child = subprocess.Popen([sys.executable, "-m", "bench.run", *args.bench_args], cwd=source_tree, process_group=0)
    # The child has its own process group: Ctrl-C and SIGTERM reach it through us, and
    # we wait while it stops the services it started (it exits 130 when interrupted).
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signal.SIGTERM))
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                child.send_signal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)
