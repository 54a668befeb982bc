"""How one recorded event changes the session and message read models."""

from __future__ import annotations

import msgspec
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.envelope import RecordedEvent
from schemas.events import (
    AssistantMessage,
    BoardConcluded,
    ExpertSpeech,
    ModelCalled,
    RoundSummary,
    SessionClosed,
    SessionCreated,
    UserMessage,
)

from ._board_messages import board_message
from .tables import rm_messages, rm_sessions, rm_usage


async def apply(conn: AsyncConnection, recorded: RecordedEvent) -> None:
    """Write what `recorded` changes; events that no read model shows change nothing.

    Inserts ignore rows that exist, so applying an event twice changes nothing more.
    """
    match recorded.event:
        case SessionCreated(session_id=session_id, agent_name=agent_name, metadata=metadata):
            await conn.execute(
                insert(rm_sessions)
                .values(
                    session_id=session_id,
                    agent_name=agent_name,
                    status="active",
                    metadata=msgspec.json.encode(metadata).decode(),
                    created_at=recorded.recorded_at,
                    updated_at=recorded.recorded_at,
                    last_position=recorded.position,
                )
                .on_conflict_do_nothing()
            )
        case UserMessage(message_id=message_id, content=content):
            await _add_message(conn, recorded, message_id, "user", content, None)
        case AssistantMessage(message_id=message_id, content=content, agent_name=agent_name):
            await _add_message(conn, recorded, message_id, "assistant", content, agent_name)
        case SessionClosed():
            await _touch(conn, recorded, status="closed")
        case ModelCalled() | ExpertSpeech() | RoundSummary() | BoardConcluded() as used:
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
            await _show_on_board(conn, recorded)
        case _:
            await _show_on_board(conn, recorded)


async def _show_on_board(conn: AsyncConnection, recorded: RecordedEvent) -> None:
    """A board's events are shown in the session's history as messages with their metadata."""
    shown = board_message(recorded.event)
    if shown is not None:
        await _add_message(
            conn, recorded, recorded.event_id, shown.role, shown.content, shown.agent_name, shown.metadata
        )


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
