"""Rows of `events` to `RecordedEvent`s and back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import Select, select

from schemas import tag_of
from schemas.codec import DecodeError, UnknownTypeError
from schemas.envelope import EventMeta, RecordedEvent
from schemas.upcasters import decode_event

from .errors import CorruptEventError
from .skipped import SkippedEvent, SkipReason
from .tables import events

COLUMNS = (
    events.c.position,
    events.c.stream,
    events.c.version,
    events.c.session_id,
    events.c.type,
    events.c.schema,
    events.c.data,
    events.c.meta,
    events.c.event_id,
    events.c.recorded_at,
)

_meta = msgspec.json.Decoder(EventMeta)


def select_events() -> Select[Any]:
    """Select the columns `to_recorded` expects, in its order."""
    return select(*COLUMNS)


def to_recorded(row: Sequence[Any]) -> RecordedEvent:
    """Decode one row selected by `select_events`; `CorruptEventError` if this code cannot read it."""
    decoded = decode_row(row)
    if isinstance(decoded, SkippedEvent):
        raise CorruptEventError(decoded.position, decoded.error)
    return decoded


def decode_row(row: Sequence[Any]) -> RecordedEvent | SkippedEvent:
    """Decode one row selected by `select_events`, upcast from its schema; a row this code cannot read is skipped."""
    position, stream, version, session_id, type_, schema, data, meta, event_id, recorded_at = row
    try:
        event = decode_event(type_, schema, data)
        event_meta = _meta.decode(meta)
    except (DecodeError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        reason: SkipReason = "unknown_type" if isinstance(exc, UnknownTypeError) else "unreadable"
        return SkippedEvent(
            position=position,
            stream=stream,
            version=version,
            session_id=session_id,
            event_id=event_id,
            type=type_,
            schema=schema,
            reason=reason,
            error=str(exc),
        )
    return RecordedEvent(
        position=position,
        stream=stream,
        version=version,
        session_id=session_id,
        event_id=event_id,
        schema=schema,
        recorded_at=recorded_at,
        meta=event_meta,
        event=event,
    )


def to_row(recorded: RecordedEvent) -> tuple[object, ...]:
    """Return the insert values of one event in `INSERT_COLUMNS` order; jsonb columns as msgspec-encoded text."""
    return (
        recorded.position,
        recorded.stream,
        recorded.version,
        recorded.session_id,
        tag_of(type(recorded.event)),
        recorded.schema,
        msgspec.json.encode(recorded.event).decode(),
        msgspec.json.encode(recorded.meta).decode(),
        recorded.event_id,
    )
