"""Events of the log this code cannot read, skipped by every reader and reported: a rolling upgrade's other half.

While old and new workers run side by side, the log holds events a newer one
wrote: a type this code does not know, or a shape it cannot decode. Readers go
on past them instead of failing on them for ever; each is logged once per
type and schema by the process and counted.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

import msgspec
import structlog

logger = structlog.get_logger(__name__)

SkipReason = Literal["unknown_type", "unreadable"]


class SkippedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A row of the log in place of the event this code could not read: where it is, what it was, why."""

    position: int
    stream: str
    version: int
    session_id: str
    event_id: str
    type: str
    schema: int
    reason: SkipReason
    """`unknown_type`: a type this code does not know; `unreadable`: a known type whose data does not decode."""
    error: str


class Skips:
    """What the readers of one process skipped, by (event type, schema); each pair is logged the first time only."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, int]] = Counter()
        """Skips per (type, schema), counting every read that met the event (a page read twice counts twice)."""

    def record(self, skipped: SkippedEvent) -> None:
        key = (skipped.type, skipped.schema)
        if not self.counts[key]:
            logger.warning(
                "unknown_event_skipped" if skipped.reason == "unknown_type" else "unreadable_event_skipped",
                position=skipped.position,
                stream=skipped.stream,
                type=skipped.type,
                schema=skipped.schema,
                error=skipped.error,
            )
        self.counts[key] += 1
