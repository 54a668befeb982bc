"""One real nats-server and one real PostgreSQL for the whole test session.

`AGENTBUS_NATS_URL` / `AGENTBUS_DATABASE_URL` point the suite at external
services instead of the embedded ones.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from bus.embedded import EmbeddedNats
from cli.local_llm import LocalLLM
from projections import Engine, create_engine, migrate
from projections.database import asyncpg_dsn
from projections.embedded import EmbeddedPostgres
from tests.system import System, delete_command_stream, delete_uploads_bucket


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
def local_llm_url(pytestconfig: pytest.Config) -> Iterator[str]:
    """The base URL of a real model server (llama-cpp-python on SmolLM2-135M-Instruct), stopped after the session.

    Built into ~/.cache/agentbus/llm the first time on a machine (about 15
    minutes); its progress is shown, not captured, so a long first run is
    seen for what it is.
    """
    llm = LocalLLM()
    if not llm.built():
        capture = pytestconfig.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            llm.ensure_built()
    yield llm.start()
    llm.stop()


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


@pytest.fixture
async def fresh_database_url(postgres_url: str) -> AsyncIterator[str]:
    """A new, empty database on the session's server, dropped after the test."""
    async with new_database(postgres_url) as url:
        yield url


@contextlib.asynccontextmanager
async def new_database(postgres_url: str) -> AsyncIterator[str]:
    """Create an empty database on the server of `postgres_url`; drop it on exit."""
    name = "agentbus_test_" + uuid.uuid4().hex[:12]
    admin = await asyncpg.connect(asyncpg_dsn(postgres_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(postgres_url, name)
    finally:
        admin = await asyncpg.connect(asyncpg_dsn(postgres_url))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def subject_prefix(nats_url: str) -> AsyncIterator[str]:
    """A subject prefix of its own, so tests sharing one nats-server never see each other.

    Its command stream is deleted afterwards, so a run against an external
    NATS leaves nothing behind.
    """
    prefix = "t" + uuid.uuid4().hex[:10]
    yield prefix
    await delete_command_stream(nats_url, prefix)
    await delete_uploads_bucket(nats_url, prefix)


@pytest.fixture
async def engine(fresh_database_url: str) -> AsyncIterator[Engine]:
    """An engine on a fresh, migrated database."""
    engine = create_engine(fresh_database_url)
    await migrate(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def system_env(nats_url: str, fresh_database_url: str, subject_prefix: str) -> dict[str, str]:
    """The environment of an `agentbus up` on the session's services, with a prefix and a database of its own."""
    return {
        "AGENTBUS_NATS_URL": nats_url,
        "AGENTBUS_DATABASE_URL": fresh_database_url,
        "AGENTBUS_SUBJECT_PREFIX": subject_prefix,
    }


@pytest.fixture
def system(tmp_path: Path, system_env: dict[str, str]) -> Iterator[System]:
    """A running `agentbus up` (see `system_env`), stopped with Ctrl-C after the test."""
    system = System(tmp_path / "data", system_env).start()
    yield system
    if system.process is not None:
        assert system.stop() == 0


@pytest.fixture
async def session_id(system: System) -> str:
    """A new session of `system`."""
    return await system.create_session()


@contextlib.asynccontextmanager
async def outage(postgres_url: str, database_url: str) -> AsyncIterator[None]:
    """Make the test's database refuse connections and drop the ones it has, for the block's duration."""
    name = urlsplit(database_url).path.lstrip("/")
    admin = await asyncpg.connect(asyncpg_dsn(postgres_url))
    try:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
        yield
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        await admin.close()
