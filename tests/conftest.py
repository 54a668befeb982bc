"""One real nats-server and one real PostgreSQL for the whole test session.

`AGENTBUS_NATS_URL` / `AGENTBUS_DATABASE_URL` point the suite at external
services instead of the embedded ones.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from bus.embedded import EmbeddedNats
from projections.embedded import EmbeddedPostgres


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("AGENTBUS_NATS_URL")
    if external:
        yield external
        return
    server = EmbeddedNats(tmp_path_factory.mktemp("nats"))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("AGENTBUS_DATABASE_URL")
    if external:
        yield external
        return
    server = EmbeddedPostgres(Path(tmp_path_factory.mktemp("pg")) / "data")
    yield server.start()
    server.stop()


def with_database(url: str, database: str) -> str:
    """Return `url` pointing at another database of the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def plain_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@pytest.fixture
async def fresh_database_url(postgres_url: str) -> AsyncIterator[str]:
    """A new, empty database on the session's server, dropped after the test."""
    name = "agentbus_test_" + uuid.uuid4().hex[:12]
    admin = await asyncpg.connect(plain_dsn(postgres_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield with_database(postgres_url, name)
    admin = await asyncpg.connect(plain_dsn(postgres_url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def subject_prefix() -> str:
    """A subject prefix of its own, so tests sharing one nats-server never see each other."""
    return "t" + uuid.uuid4().hex[:10]
