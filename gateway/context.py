"""What the gateway's handlers share: the bus, the event log (read only) and the read models."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from bus import Bus
from projections import EventLog, ReadModels
from schemas import limits

from .health import Health


@dataclass(slots=True)
class GatewayMetrics:
    """Counters of one gateway process (mutable: the handlers bump them; `/metrics` reads them)."""

    ws_open: int = 0
    ws_accepted_total: int = 0
    ws_frames_sent_total: int = 0
    commands_published_total: int = 0
    commands_failed_total: int = 0


class GatewayContext(msgspec.Struct, frozen=True, kw_only=True):
    """Handles the gateway needs; it holds no business logic of its own."""

    bus: Bus
    event_log: EventLog
    read_models: ReadModels
    api_key: str | None = None
    request_timeout: float = 10.0
    answer_timeout: float = 120.0
    """How long `POST …/messages` waits for the turn's answer before a 504."""
    max_frame_bytes: int = limits.MAX_SOCKET_FRAME_BYTES
    relay_lag_limit: int = 1000
    """`/readyz` fails once the relay trails the log by more events than this ..."""
    relay_lag_grace: float = 10.0
    """... for this many seconds without a break (a burst of events is not a failure)."""
    metrics: GatewayMetrics = msgspec.field(default_factory=GatewayMetrics)
    health: Health = msgspec.field(default_factory=Health)
