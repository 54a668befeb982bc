"""The envelope of an event once it is in the log, and the live feed of a session."""

from __future__ import annotations

from datetime import datetime

import msgspec

from ._base import Message
from .events import AnyEvent
from .frames import AnyFrame


class EventMeta(msgspec.Struct, frozen=True, kw_only=True):
    """Tracing data: what caused an event and who wrote it."""

    correlation_id: str | None = None
    causation_id: str | None = None
    actor: str | None = None
    traceparent: str | None = None
    """The W3C trace context of the append that recorded it, when tracing was on: the relay's span continues it."""


class RecordedEvent(Message, frozen=True, kw_only=True, tag="event"):
    """An event as the log holds it: its global `position` and its place in its stream."""

    position: int
    stream: str
    version: int
    session_id: str
    event_id: str
    schema: int
    recorded_at: datetime
    meta: EventMeta
    event: AnyEvent


FeedItem = RecordedEvent | AnyFrame
"""What a session's live subject carries: persisted events and ephemeral frames."""
