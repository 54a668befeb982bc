"""The live feed as a client must see it: an event too big for NATS is fetched from the log."""

from __future__ import annotations

import structlog

from projections import EventLog
from schemas import EventOmitted, FeedItem, RecordedEvent, codec

logger = structlog.get_logger("agentbus.gateway")

MAX_POSITION = 2**63 - 1
"""The largest position the log can hold (a PostgreSQL bigint): an `after` beyond it is a bad request."""


async def resolve(event_log: EventLog, session_id: str, item: FeedItem) -> FeedItem | None:
    """Return `item`, or for an `EventOmitted` the event it stands for, read from the log.

    None when the log holds no such event of this session (a stray frame), or
    one of a type this gateway does not know (a newer worker's, during a
    rolling upgrade: its history reads skip it too). A database failure raises `EventLogError`.
    """
    if not isinstance(item, EventOmitted):
        return item
    if item.event_type not in codec.events.tags:
        return None
    page = await event_log.read_session(session_id, after=item.position - 1, limit=1)
    if page and page[0].position == item.position:
        recorded: RecordedEvent = page[0]
        return recorded
    logger.warning("omitted_event_not_found", position=item.position, event_type=item.event_type)
    return None
