"""Engines, database creation and migrations of the event log's database."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlencode, urlsplit, urlunsplit

import asyncpg
import pytest
from sqlalchemy import UniqueConstraint, inspect, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from projections import DatabaseError, EventLog, EventLogError, NewEvent, create_engine, ensure_database, migrate
from projections.database import asyncpg_dsn, sqlalchemy_url
from projections.migrations import MIGRATIONS
from projections.tables import metadata
from schemas.events import SessionClosed


def host_in_query(url: str) -> str:
    """Return `url` with its host (a TCP host or a socket directory) as a `host=` query parameter."""
    parts = urlsplit(url)
    if not parts.hostname:
        return url
    query = {"host": parts.hostname, **({"port": str(parts.port)} if parts.port else {})}
    netloc = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query)))


async def test_engine_accepts_a_plain_url_with_the_host_as_query_parameter(fresh_database_url: str) -> None:
    """The embedded server's URL has this form: `postgresql://postgres:@/db?host=/socket/dir`."""
    url = host_in_query(fresh_database_url)
    assert "host=" in url and url.startswith("postgresql://")
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT current_database()")) == urlsplit(url).path.lstrip("/")
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(asyncpg_dsn(url))
    await conn.close()


def test_urls_are_normalized_to_the_asyncpg_driver() -> None:
    assert sqlalchemy_url("postgresql://u:p@h:5/db").drivername == "postgresql+asyncpg"
    assert sqlalchemy_url("postgres://u@h/db").drivername == "postgresql+asyncpg"
    assert sqlalchemy_url("postgresql://u:@/db?host=/tmp/x").query == {"host": "/tmp/x"}
    assert asyncpg_dsn("postgresql+asyncpg://u:p%40ss@h:5/db") == "postgresql://u:p%40ss@h:5/db"
    with pytest.raises(EventLogError):
        sqlalchemy_url("mysql://u@h/db")


async def test_ensure_database_creates_a_missing_database_once(postgres_url: str) -> None:
    name = "agentbus_ensure_" + uuid.uuid4().hex[:8]
    url = urlunsplit(urlsplit(postgres_url)._replace(path="/" + name))
    try:
        await asyncio.gather(ensure_database(url), ensure_database(url))
        await ensure_database(url)
        conn = await asyncpg.connect(asyncpg_dsn(url))
        assert await conn.fetchval("SELECT current_database()") == name
        await conn.close()
    finally:
        admin = await asyncpg.connect(asyncpg_dsn(postgres_url))
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_migrations_run_once_even_when_processes_start_together(fresh_database_url: str) -> None:
    engines = [create_engine(fresh_database_url) for _ in range(3)]
    try:
        await asyncio.gather(*(migrate(engine) for engine in engines))
        await migrate(engines[0])
        async with engines[0].connect() as conn:
            versions = (await conn.execute(text("SELECT version FROM schema_migrations ORDER BY version"))).scalars()
            assert list(versions) == [step.version for step in MIGRATIONS]
    finally:
        for engine in engines:
            await engine.dispose()


def _schema(conn: Connection) -> dict[str, object]:
    inspector = inspect(conn)
    dialect = postgresql.dialect()
    described = {}
    for table in sorted(metadata.tables):
        columns = inspector.get_columns(table)
        described[table] = {
            "columns": {(c["name"], c["type"].compile(dialect), c["nullable"]) for c in columns},
            "unique": {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)},
            "indexes": {tuple(i["column_names"]) for i in inspector.get_indexes(table) if not i.get("unique")},
        }
    return described


def _declared() -> dict[str, object]:
    dialect = postgresql.dialect()
    described = {}
    for name, table in sorted(metadata.tables.items()):
        described[name] = {
            "columns": {(c.name, c.type.compile(dialect), c.nullable) for c in table.columns},
            "unique": {tuple(c.name for c in u.columns) for u in table.constraints if isinstance(u, UniqueConstraint)},
            "indexes": {tuple(c.name for c in i.columns) for i in table.indexes},
        }
    return described


async def test_migrated_schema_matches_the_table_definitions(fresh_database_url: str) -> None:
    engine = create_engine(fresh_database_url)
    try:
        await migrate(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(_schema) == _declared()
    finally:
        await engine.dispose()


async def test_driver_failures_become_database_errors(fresh_database_url: str) -> None:
    missing = urlunsplit(urlsplit(fresh_database_url)._replace(path="/agentbus_missing_" + uuid.uuid4().hex[:8]))
    engine = create_engine(missing)
    log = EventLog(engine)
    try:
        with pytest.raises(DatabaseError) as raised:
            await log.read_all()
        assert raised.value.operation == "read all"
        with pytest.raises(DatabaseError):
            await log.last_position()
    finally:
        await log.close()
        await engine.dispose()


async def test_appends_to_an_unmigrated_database_fail_with_a_database_error(fresh_database_url: str) -> None:
    engine: AsyncEngine = create_engine(fresh_database_url)
    log = EventLog(engine)
    try:
        with pytest.raises(DatabaseError) as raised:
            await log.append("s", [NewEvent(event=SessionClosed(), session_id="s")], 0)
        assert raised.value.operation == "append"
    finally:
        await log.close()
        await engine.dispose()
