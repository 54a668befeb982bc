"""Versioned schema migrations: numbered steps recorded in `schema_migrations`.

The steps are frozen SQL, not generated from `tables`: a released step must
never change, later changes are new steps. A test checks that the migrated
schema still matches `tables.metadata`.
"""

from __future__ import annotations

from typing import NamedTuple

import structlog
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from . import _locks
from .errors import DatabaseError

logger = structlog.get_logger(__name__)


class Migration(NamedTuple):
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "event log and checkpoints",
        (
            "CREATE SEQUENCE events_position_seq",
            """CREATE TABLE events (
                position bigint PRIMARY KEY DEFAULT nextval('events_position_seq'),
                stream text NOT NULL,
                version integer NOT NULL,
                session_id text NOT NULL,
                type text NOT NULL,
                schema smallint NOT NULL,
                data jsonb NOT NULL,
                meta jsonb NOT NULL,
                event_id uuid NOT NULL,
                recorded_at timestamptz NOT NULL DEFAULT now(),
                CONSTRAINT events_stream_version_key UNIQUE (stream, version),
                CONSTRAINT events_event_id_key UNIQUE (event_id)
            )""",
            "ALTER SEQUENCE events_position_seq OWNED BY events.position",
            "CREATE INDEX events_session_position_idx ON events (session_id, position)",
            """CREATE TABLE checkpoints (
                name text PRIMARY KEY,
                position bigint NOT NULL
            )""",
        ),
    ),
    Migration(
        2,
        "session and message read models",
        (
            """CREATE TABLE rm_sessions (
                session_id text PRIMARY KEY,
                agent_name text NOT NULL,
                status text NOT NULL,
                metadata jsonb NOT NULL,
                created_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL,
                last_position bigint NOT NULL,
                CONSTRAINT rm_sessions_status_check CHECK (status IN ('active', 'closed'))
            )""",
            """CREATE TABLE rm_messages (
                message_id text PRIMARY KEY,
                session_id text NOT NULL,
                position bigint NOT NULL,
                role text NOT NULL,
                content text NOT NULL,
                agent_name text,
                created_at timestamptz NOT NULL,
                CONSTRAINT rm_messages_role_check CHECK (role IN ('user', 'assistant'))
            )""",
            "CREATE INDEX rm_messages_session_position_idx ON rm_messages (session_id, position)",
        ),
    ),
    Migration(
        3,
        "message metadata (board speeches, summaries, conclusions)",
        ("ALTER TABLE rm_messages ADD COLUMN metadata jsonb",),
    ),
    Migration(
        4,
        "model usage per call (turns' model calls, board speeches, summaries, conclusions)",
        (
            """CREATE TABLE rm_usage (
                event_id uuid PRIMARY KEY,
                session_id text NOT NULL,
                prompt_tokens bigint NOT NULL,
                completion_tokens bigint NOT NULL,
                truncated boolean NOT NULL
            )""",
            "CREATE INDEX rm_usage_session_idx ON rm_usage (session_id)",
        ),
    ),
    Migration(
        5,
        "session titles (the first message, or a rename)",
        ("ALTER TABLE rm_sessions ADD COLUMN title text",),
    ),
    Migration(
        6,
        "events the projector skipped (unknown to its code: written by a newer worker)",
        (
            """CREATE TABLE rm_skipped_events (
                type text NOT NULL,
                schema smallint NOT NULL,
                events bigint NOT NULL,
                first_position bigint NOT NULL,
                last_position bigint NOT NULL,
                PRIMARY KEY (type, schema)
            )""",
        ),
    ),
    Migration(
        7,
        "session owners (the user who created each session)",
        (
            "ALTER TABLE rm_sessions ADD COLUMN owner text",
            "CREATE INDEX rm_sessions_owner_idx ON rm_sessions (owner, created_at)",
        ),
    ),
    Migration(
        8,
        "departments, their members, quotas and usage; the quota counters calls reserve against",
        (
            """CREATE TABLE rm_departments (
                department_id text PRIMARY KEY,
                name text NOT NULL,
                created_at timestamptz NOT NULL
            )""",
            """CREATE TABLE rm_department_members (
                department_id text NOT NULL,
                user_id text NOT NULL,
                PRIMARY KEY (department_id, user_id)
            )""",
            "CREATE INDEX rm_department_members_user_idx ON rm_department_members (user_id)",
            """CREATE TABLE rm_quotas (
                department_id text NOT NULL,
                quota_type text NOT NULL,
                period text NOT NULL,
                quota_limit bigint NOT NULL,
                PRIMARY KEY (department_id, quota_type, period)
            )""",
            """CREATE TABLE rm_department_usage (
                event_id uuid NOT NULL,
                department_id text NOT NULL,
                day date NOT NULL,
                tokens bigint NOT NULL,
                PRIMARY KEY (event_id, department_id)
            )""",
            "CREATE INDEX rm_department_usage_day_idx ON rm_department_usage (department_id, day)",
            """CREATE TABLE quota_counters (
                department_id text NOT NULL,
                quota_type text NOT NULL,
                period text NOT NULL,
                period_start date NOT NULL,
                used bigint NOT NULL,
                PRIMARY KEY (department_id, quota_type, period, period_start)
            )""",
        ),
    ),
    Migration(
        9,
        "the tenant: the subject prefix this database belongs to (one row, claimed by the first start)",
        (
            """CREATE TABLE tenant (
                singleton boolean PRIMARY KEY DEFAULT true,
                subject_prefix text NOT NULL,
                claimed_at timestamptz NOT NULL DEFAULT now(),
                CONSTRAINT tenant_singleton_check CHECK (singleton)
            )""",
        ),
    ),
)

_CREATE_LEDGER = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


async def migrate(engine: AsyncEngine) -> None:
    """Apply every migration step the database lacks, all in one transaction.

    Safe to call at every start-up and from several processes at once: the
    first holds an advisory lock, the others wait for it and then find nothing to do.
    """
    try:
        async with engine.begin() as conn:
            # The lock comes first: even CREATE TABLE IF NOT EXISTS fails when two run it at once.
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _locks.MIGRATE})
            await conn.exec_driver_sql(_CREATE_LEDGER)
            applied = set((await conn.execute(text("SELECT version FROM schema_migrations"))).scalars())
            for step in MIGRATIONS:
                if step.version in applied:
                    continue
                for statement in step.statements:
                    await conn.exec_driver_sql(statement)
                await conn.execute(
                    text("INSERT INTO schema_migrations (version, name) VALUES (:version, :name)"),
                    {"version": step.version, "name": step.name},
                )
                logger.info("migration_applied", version=step.version, name=step.name)
    except (DBAPIError, OSError) as exc:
        raise DatabaseError("migrate", str(exc)) from exc
