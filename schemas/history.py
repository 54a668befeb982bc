"""The events request: a session's persisted events after a position, answered from the log over the bus.

A service that reconnects sends `ReadEvents` to `<prefix>.session.<sid>.events`
and pages with `after = next_after` while `more` is true, then follows the
live subject, dropping what it has seen by `position`: it needs no HTTP to see
every event exactly once. Each item is the envelope the live subject carries.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from ._base import Message, Reply
from .codec import Decoder
from .envelope import RecordedEvent
from .frames import EventOmitted
from .replies import ErrorReply

DEFAULT_LIMIT = 100
"""Events a page holds when the request names no `limit`."""

MAX_LIMIT = 1000
"""The most events one page holds; a larger `limit` is cut to it."""

MAX_POSITION = 2**63 - 1
"""The largest log position there can be (PostgreSQL `bigint`)."""


class ReadEvents(Message, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Ask for the session's events with a position above `after`, oldest first, at most `limit` of them.

    The session is the one the subject names; `type` may be left out, and an
    empty request body means `{}`. A `limit` above `MAX_LIMIT` is cut to it; a
    page also ends before the reply would outgrow what NATS carries (`more` is
    then true).
    """

    after: Annotated[int, msgspec.Meta(ge=0, le=MAX_POSITION)] = 0
    limit: Annotated[int, msgspec.Meta(ge=1)] = DEFAULT_LIMIT


class EventsPage(Reply, frozen=True, kw_only=True):
    """One page of a session's log; ask again with `after = next_after` while `more` is true.

    An event too large for NATS is replaced by an `event_omitted` notice naming
    its position, as on the live subject.
    """

    session_id: str
    events: list[RecordedEvent | EventOmitted]
    next_after: int
    """The position of the page's last item (the request's `after` when the page is empty)."""
    more: bool
    """Whether the log held more of the session's events past `next_after` when the page was read."""


EventsReply = EventsPage | ErrorReply

read_events: Decoder[ReadEvents] = Decoder(ReadEvents, "read_events request")
events_replies: Decoder[EventsReply] = Decoder(EventsReply, "read_events reply")
