"""How one recorded event changes the session and message read models."""

from __future__ import annotations

import msgspec
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.envelope import RecordedEvent
from schemas.events import (
    AssistantMessage,
    BoardConcluded,
    DepartmentCreated,
    DepartmentMemberAdded,
    DepartmentMemberRemoved,
    ExpertSpeech,
    ModelCalled,
    QuotaSet,
    RoundSummary,
    SessionClosed,
    SessionCreated,
    SessionErased,
    SessionRenamed,
    UserMessage,
)

from ._board_messages import board_message
from ._department_apply import apply_department
from ._team_messages import needs_phase_name, team_message
from .erasure import erase_views
from .tables import events, rm_messages, rm_sessions, rm_usage
from .teams import ModelCall, is_model_call

_Usage = ModelCalled | ExpertSpeech | RoundSummary | BoardConcluded | ModelCall
"""The events that record a model call and what it took."""


async def apply(conn: AsyncConnection, recorded: RecordedEvent) -> None:
    """Write what `recorded` changes; events that no read model shows change nothing.

    Inserts ignore rows that exist, so applying an event twice changes nothing more.
    """
    match recorded.event:
        case SessionCreated(session_id=session_id, agent_name=agent_name, metadata=metadata, owner=owner):
            await conn.execute(
                insert(rm_sessions)
                .values(
                    session_id=session_id,
                    owner=owner,
                    agent_name=agent_name,
                    status="active",
                    metadata=msgspec.json.encode(metadata).decode(),
                    created_at=recorded.recorded_at,
                    updated_at=recorded.recorded_at,
                    last_position=recorded.position,
                )
                .on_conflict_do_nothing()
            )
        case UserMessage(message_id=message_id, content=content, shown=shown, routing=routing):
            # History shows what the user meant: the clean text, the routing beside it (the seed's way).
            routed: dict[str, object] | None = None if routing is None else {"routing": msgspec.to_builtins(routing)}
            await _add_message(conn, recorded, message_id, "user", shown or content, None, routed)
            # Until renamed, a session is titled by its first message.
            await conn.execute(
                update(rm_sessions)
                .where(rm_sessions.c.session_id == recorded.session_id, rm_sessions.c.title.is_(None))
                .values(title=_title(shown or content))
            )
        case AssistantMessage(message_id=message_id, content=content, agent_name=agent_name):
            await _add_message(conn, recorded, message_id, "assistant", content, agent_name)
        case SessionClosed():
            await _touch(conn, recorded, status="closed")
        case SessionRenamed(title=title):
            await _touch(conn, recorded, title=title)
        case SessionErased():
            await erase_views(conn, recorded.session_id)
        case ModelCalled() | ExpertSpeech() | RoundSummary() | BoardConcluded() as used:
            await _add_usage(conn, recorded, used)
            await apply_department(conn, recorded)
            await _show_in_history(conn, recorded)
        case DepartmentCreated() | DepartmentMemberAdded() | DepartmentMemberRemoved() | QuotaSet():
            await apply_department(conn, recorded)
        case team_call if is_model_call(team_call):
            await _add_usage(conn, recorded, team_call)
            await apply_department(conn, recorded)
            await _show_in_history(conn, recorded)
        case _:
            await _show_in_history(conn, recorded)


async def _add_usage(conn: AsyncConnection, recorded: RecordedEvent, used: _Usage) -> None:
    """One usage row per model call, keyed by its event, so a replay counts it once."""
    await conn.execute(
        insert(rm_usage)
        .values(
            event_id=recorded.event_id,
            session_id=recorded.session_id,
            prompt_tokens=used.prompt_tokens,
            completion_tokens=used.completion_tokens,
            truncated=used.truncated,
        )
        .on_conflict_do_nothing()
    )


async def _show_in_history(conn: AsyncConnection, recorded: RecordedEvent) -> None:
    """A board's or team's events are shown in the session's history as messages with their metadata."""
    event = recorded.event
    phase_id = needs_phase_name(event)
    shown = board_message(event) or team_message(
        event, None if phase_id is None else await _phase_name(conn, recorded, phase_id)
    )
    if shown is not None:
        await _add_message(
            conn, recorded, recorded.event_id, shown.role, shown.content, shown.agent_name, shown.metadata
        )


async def _phase_name(conn: AsyncConnection, recorded: RecordedEvent, phase_id: str) -> str | None:
    """The name of phase `phase_id` as its team's stream said it last before `recorded` (None if it never did)."""
    named = (
        select(events.c.data["phase_name"].astext)
        .where(
            events.c.stream == recorded.stream,
            events.c.position < recorded.position,
            events.c.type.in_(("phase_started", "plan_step")),
            events.c.data["phase_id"].astext == phase_id,
        )
        .order_by(events.c.position.desc())
        .limit(1)
    )
    name: str | None = await conn.scalar(named)
    return name


async def _add_message(
    conn: AsyncConnection,
    recorded: RecordedEvent,
    message_id: str,
    role: str,
    content: str,
    agent_name: str | None,
    metadata: dict[str, object] | None = None,
) -> None:
    await conn.execute(
        insert(rm_messages)
        .values(
            message_id=message_id,
            session_id=recorded.session_id,
            position=recorded.position,
            role=role,
            content=content,
            agent_name=agent_name,
            created_at=recorded.recorded_at,
            metadata=None if metadata is None else msgspec.json.encode(metadata).decode(),
        )
        .on_conflict_do_nothing()
    )
    await _touch(conn, recorded)


async def _touch(conn: AsyncConnection, recorded: RecordedEvent, **changes: str) -> None:
    await conn.execute(
        update(rm_sessions)
        .where(rm_sessions.c.session_id == recorded.session_id)
        .values(updated_at=recorded.recorded_at, last_position=recorded.position, **changes)
    )


TITLE_CHARS = 80


def _title(content: str) -> str:
    """A title from a message: its first line, at most `TITLE_CHARS` characters."""
    line = " ".join(content.strip().splitlines()[0].split()) if content.strip() else ""
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"
