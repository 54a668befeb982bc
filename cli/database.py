"""The database a command works on: found, opened and migrated.

A one-shot command uses the database of `$AGENTBUS_DATABASE_URL`, of a running
`agentbus up` (its endpoints.json), or of a stopped one: a stopped `agentbus
up` with embedded services leaves its PostgreSQL cluster under
`<data-dir>/pg`, and a command that only needs the database (replay,
projections rebuild, migrate) starts that server for itself, holding the data
dir's lock meanwhile so that no `agentbus up` starts on it under the command's
feet, and stops it on the way out.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from projections import Engine, TenantMismatch, create_engine, ensure_database, migrate
from projections.embedded import EmbeddedPostgres
from projections.tenant import claim_tenant

from .embedded import DataDirLock
from .settings import Settings, discover


async def open_database(url: str, prefix: str) -> Engine:
    """Create (if need be) and migrate the database of `url` and claim it for subject prefix `prefix`; return an
    engine on it. A database of another prefix exits naming both (`projections.tenant`)."""
    await ensure_database(url)
    engine = create_engine(url)
    try:
        await migrate(engine)
        await claim_tenant(engine, prefix)
    except TenantMismatch as exc:
        await engine.dispose()
        raise SystemExit(f"agentbus: {exc}") from None
    return engine


@contextlib.asynccontextmanager
async def database(url: str, prefix: str) -> AsyncIterator[Engine]:
    """`open_database` for the one-shot commands, disposed on exit."""
    engine = await open_database(url, prefix)
    try:
        yield engine
    finally:
        await engine.dispose()


@contextlib.contextmanager
def database_url(args: argparse.Namespace, settings: Settings) -> Iterator[str]:
    """Yield the URL of the database of `args.data_dir`'s system, running or stopped; exit if there is none."""
    found = discover(args, settings)
    url = settings.database_url or (found.database_url if found else None)
    if url:
        yield url
        return
    data_dir = Path(args.data_dir).resolve()
    if not (data_dir / "pg" / "PG_VERSION").is_file():
        raise SystemExit(
            f"no database: {data_dir} holds no system (run `agentbus up` there first), "
            "and AGENTBUS_DATABASE_URL is not set"
        )
    lock = DataDirLock(data_dir)
    lock.acquire()  # a system starting or stopping there: exits naming it
    try:
        server = EmbeddedPostgres(data_dir / "pg")
        server.stop_leftover()  # what a killed `up` left running: ours to stop, we hold the lock
        print(f"agentbus: {data_dir} is stopped; reading its database", file=sys.stderr, flush=True)
        try:
            yield server.start()
        finally:
            server.stop()
    finally:
        lock.release()
