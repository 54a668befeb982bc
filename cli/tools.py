"""The one-shot commands on the database: `migrate`, `projections rebuild`, `replay`; and `bench`.

Each reads the database of a running `agentbus up`, of a stopped one, or of
`$AGENTBUS_DATABASE_URL` (see `cli.database`).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import msgspec

from projections import EventLog, Projector, create_engine
from projections.replay import board_markdown, load_board, load_team, session_outline, team_markdown

from .database import database, database_url
from .settings import Settings


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    async def main(url: str) -> None:
        async with database(url, settings.subject_prefix):
            pass

    with database_url(args, settings) as url:
        asyncio.run(main(url))
    print("database schema is up to date")
    return 0


def cmd_projections(args: argparse.Namespace, settings: Settings) -> int:
    """Recreate the read models from the event log (identical to what the projector built live); say what was rebuilt."""

    async def main(url: str) -> str:
        async with database(url, settings.subject_prefix) as engine:
            event_log = EventLog(engine)
            try:
                rebuilt = await Projector(engine, event_log).rebuild()
            finally:
                await event_log.close()
        rows = [f"  {table:<12} {count:>8} rows" for table, count in rebuilt.rows.items()]
        return "\n".join(
            [f"read models rebuilt from {rebuilt.events} events (the log up to position {rebuilt.position})", *rows]
        )

    with database_url(args, settings) as url:
        print(asyncio.run(main(url)))
    return 0


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Rebuild a board or a team, or outline a session, from the event log alone (only the database is needed)."""

    async def main(url: str) -> str:
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

    with database_url(args, settings) as url:
        print(asyncio.run(main(url)))
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
