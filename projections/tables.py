"""The tables as SQLAlchemy Core sees them; `migrations` creates them in the database.

jsonb columns hold JSON text on the Python side (see `database.create_engine`).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    Sequence,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

position_seq = Sequence("events_position_seq", metadata=metadata)
"""Draws global positions; only under the append lock, so they commit in order."""

events = Table(
    "events",
    metadata,
    Column("position", BigInteger, primary_key=True, server_default=position_seq.next_value()),
    Column("stream", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("session_id", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("schema", SmallInteger, nullable=False),
    Column("data", JSONB, nullable=False),
    Column("meta", JSONB, nullable=False),
    Column("event_id", Uuid(as_uuid=False), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("stream", "version", name="events_stream_version_key"),
    UniqueConstraint("event_id", name="events_event_id_key"),
    Index("events_session_position_idx", "session_id", "position"),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("name", Text, primary_key=True),
    Column("position", BigInteger, nullable=False),
)

rm_sessions = Table(
    "rm_sessions",
    metadata,
    Column("session_id", Text, primary_key=True),
    Column("agent_name", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("metadata", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("last_position", BigInteger, nullable=False),
    Column("title", Text, nullable=True),
    Column("owner", Text, nullable=True),
    CheckConstraint("status IN ('active', 'closed')", name="rm_sessions_status_check"),
    Index("rm_sessions_owner_idx", "owner", "created_at"),
)

rm_messages = Table(
    "rm_messages",
    metadata,
    Column("message_id", Text, primary_key=True),
    Column("session_id", Text, nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("role", Text, nullable=False),
    Column("content", Text, nullable=False),
    Column("agent_name", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("metadata", JSONB, nullable=True),
    CheckConstraint("role IN ('user', 'assistant')", name="rm_messages_role_check"),
    Index("rm_messages_session_position_idx", "session_id", "position"),
)

rm_usage = Table(
    "rm_usage",
    metadata,
    Column("event_id", Uuid(as_uuid=False), primary_key=True),
    Column("session_id", Text, nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("truncated", Boolean, nullable=False),
    Index("rm_usage_session_idx", "session_id"),
)
"""One row per model call (its event), so applying an event twice counts it once."""

rm_skipped_events = Table(
    "rm_skipped_events",
    metadata,
    Column("type", Text, primary_key=True),
    Column("schema", SmallInteger, primary_key=True),
    Column("events", BigInteger, nullable=False),
    Column("first_position", BigInteger, nullable=False),
    Column("last_position", BigInteger, nullable=False),
)
"""The events the projector could not read and went past (written by a newer worker), per type and schema."""

rm_departments = Table(
    "rm_departments",
    metadata,
    Column("department_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

rm_department_members = Table(
    "rm_department_members",
    metadata,
    Column("department_id", Text, primary_key=True),
    Column("user_id", Text, primary_key=True),
    Index("rm_department_members_user_idx", "user_id"),
)

rm_quotas = Table(
    "rm_quotas",
    metadata,
    Column("department_id", Text, primary_key=True),
    Column("quota_type", Text, primary_key=True),
    Column("period", Text, primary_key=True),
    Column("quota_limit", BigInteger, nullable=False),
)
"""The limits calls reserve against (as the log's `quota_set` events left them)."""

rm_department_usage = Table(
    "rm_department_usage",
    metadata,
    Column("event_id", Uuid(as_uuid=False), primary_key=True),
    Column("department_id", Text, primary_key=True),
    Column("day", Date, nullable=False),
    Column("tokens", BigInteger, nullable=False),
    Index("rm_department_usage_day_idx", "department_id", "day"),
)
"""One row per model call and department it was counted against (its event's), so a replay counts it once."""

quota_counters = Table(
    "quota_counters",
    metadata,
    Column("department_id", Text, primary_key=True),
    Column("quota_type", Text, primary_key=True),
    Column("period", Text, primary_key=True),
    Column("period_start", Date, primary_key=True),
    Column("used", BigInteger, nullable=False),
)
"""What each department's calls reserved of each quota in each period: written by the calls themselves (an
atomic reservation before each, settled after it), not by the projector, so it is no read model."""

tenant = Table(
    "tenant",
    metadata,
    Column("singleton", Boolean, primary_key=True, server_default=true()),
    Column("subject_prefix", Text, nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("singleton", name="tenant_singleton_check"),
)
"""The one subject prefix this database serves (see `projections.tenant`): tenants never share a database."""

READ_MODEL_TABLES = (
    rm_sessions,
    rm_messages,
    rm_usage,
    rm_skipped_events,
    rm_departments,
    rm_department_members,
    rm_quotas,
    rm_department_usage,
)
"""What `Projector.rebuild` empties before replaying the log."""
