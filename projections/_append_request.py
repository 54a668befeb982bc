"""What an append carries: the caller's `NewEvent`s and the request the appender queues for them.

These types live apart from `eventlog`, `_appender` and `_batch` so that each of
those imports them without importing the others: the imports point one way.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

import msgspec

from schemas.envelope import EventMeta, RecordedEvent
from schemas.events import AnyEvent


def _new_event_id() -> str:
    return str(uuid.uuid4())


class NewEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event to append; `event_id` (a UUID) makes a retried append a no-op."""

    event: AnyEvent
    session_id: str
    event_id: str = msgspec.field(default_factory=_new_event_id)
    meta: EventMeta = EventMeta()


@dataclass(eq=False, slots=True)
class AppendRequest:
    """One caller's `append`, waiting in the appender's queue for its outcome."""

    stream: str
    events: tuple[NewEvent, ...]
    expected_version: int | None
    future: asyncio.Future[list[RecordedEvent]] = field(repr=False)

    @property
    def event_ids(self) -> list[str]:
        return [new.event_id for new in self.events]
