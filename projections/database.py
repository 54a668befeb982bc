"""Engines and databases: one URL form in, SQLAlchemy (asyncpg) or raw asyncpg out."""

from __future__ import annotations

from contextlib import suppress

import asyncpg
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .errors import DatabaseError, EventLogError

Engine = AsyncEngine
"""The handle every `projections` class takes; other packages name it without importing SQLAlchemy."""

_SCHEMES = {"postgres", "postgresql", "postgresql+asyncpg"}


def sqlalchemy_url(url: str | URL) -> URL:
    """Return `url` with the asyncpg driver; query parameters (`host=/socket/dir`) are kept."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise EventLogError(f"not a database URL: {exc}") from None
    if parsed.drivername not in _SCHEMES:
        raise EventLogError(f"not a PostgreSQL URL (scheme {parsed.drivername!r})")
    return parsed.set(drivername="postgresql+asyncpg")


def asyncpg_dsn(url: str | URL) -> str:
    """Return `url` as a DSN that `asyncpg.connect` accepts (password included)."""
    return sqlalchemy_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _as_is(text: str) -> str:
    return text


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """Create the engine every `projections` class expects.

    jsonb columns travel as JSON text in both directions: callers encode and
    decode with msgspec, never through Python dicts and the json module.
    """
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        # A database restart would otherwise hand the next caller a dead connection.
        pool_pre_ping=True,
        json_serializer=_as_is,
        json_deserializer=_as_is,
    )


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def ensure_database(url: str) -> None:
    """Create the database named in `url` unless it exists.

    Connects to the `postgres` database of the same server, with the same credentials.
    """
    target = sqlalchemy_url(url)
    name = target.database
    if not name:
        raise EventLogError("the database URL names no database")
    try:
        admin = await asyncpg.connect(asyncpg_dsn(target.set(database="postgres")))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseError(f"connect to the server of {name!r}", str(exc)) from exc
    try:
        if await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return
        # Another process may create it between our check and our CREATE.
        with suppress(asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            await admin.execute(f"CREATE DATABASE {_quote_ident(name)}")
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseError(f"create database {name!r}", str(exc)) from exc
    finally:
        await admin.close()
