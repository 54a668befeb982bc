"""How an actor records its own events: one append, at its version, traced to their cause."""

from __future__ import annotations

from projections import EventLog, NewEvent
from schemas import EventMeta, RecordedEvent
from schemas.events import AnyEvent


async def record(
    log: EventLog,
    actor: str,
    stream: str,
    session_id: str,
    events: list[AnyEvent],
    *,
    version: int,
    cause: str | None,
) -> list[RecordedEvent]:
    """Append `events` to the actor's `stream`, expecting it at `version` (the single-writer check).

    `cause` (the command or actor that led to them) becomes the events' causation
    and correlation id; `actor` ("kind:id") says who wrote them.
    """
    meta = EventMeta(causation_id=cause, correlation_id=cause, actor=actor)
    return await log.append(
        stream, [NewEvent(event=event, session_id=session_id, meta=meta) for event in events], expected_version=version
    )
