"""What the gateway's handlers share: the bus, the event log (read only) and the read models."""

from __future__ import annotations

import os
from dataclasses import dataclass

import msgspec

from bus import Bus
from projections import EventLog, ReadModels
from schemas import limits

from .auth import JwtKeys
from .fanout import Fanout
from .health import Health


def _from_env(name: str, default: float) -> float:
    """A positive number from the environment variable `name`, else `default`."""
    value = os.environ.get(name)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds or frames, not {value!r}") from None
    if number <= 0:
        raise ValueError(f"{name} must be positive, not {value!r}")
    return number


@dataclass(slots=True)
class GatewayMetrics:
    """Counters of one gateway process (mutable: the handlers bump them; `/metrics` reads them)."""

    ws_open: int = 0
    ws_accepted_total: int = 0
    ws_frames_sent_total: int = 0
    commands_published_total: int = 0
    commands_failed_total: int = 0
    ws_closed_slow_total: int = 0
    """Sockets closed with 4008 because their client did not read fast enough."""


class GatewayContext(msgspec.Struct, frozen=True, kw_only=True):
    """Handles the gateway needs; it holds no business logic of its own."""

    bus: Bus
    event_log: EventLog
    read_models: ReadModels
    api_key: str | None = None
    """The service credential; with it (or `jwt`) set, every route but the open ones needs a credential."""
    jwt: JwtKeys | None = None
    """The key users' tokens are verified with; None: no user tokens."""
    request_timeout: float = 10.0
    answer_timeout: float = 120.0
    """How long `POST …/messages` waits for the turn's answer before a 504."""
    max_frame_bytes: int = limits.MAX_SOCKET_FRAME_BYTES
    relay_lag_limit: int = 1000
    """`/readyz` fails once the relay trails the log by more events than this ..."""
    relay_lag_grace: float = 10.0
    """... for this many seconds without a break (a burst of events is not a failure)."""
    ws_idle_ping: float = msgspec.field(default_factory=lambda: _from_env("AGENTBUS_WS_IDLE_PING", 300.0))
    """Seconds without a frame from the client after which the socket sends it an unprompted `pong` (the seed's 300)."""
    ws_buffer: int = msgspec.field(default_factory=lambda: int(_from_env("AGENTBUS_WS_BUFFER", 1000)))
    """Live frames a socket may have waiting to be sent; past that its client is too slow and it is closed (4008)."""
    locale: str = msgspec.field(default_factory=lambda: os.environ.get("AGENTBUS_LOCALE", "en"))
    """The language of the texts of sessions whose metadata names no `locale` (`AGENTBUS_LOCALE`)."""
    fanout: Fanout = msgspec.field(default_factory=Fanout)
    metrics: GatewayMetrics = msgspec.field(default_factory=GatewayMetrics)
    health: Health = msgspec.field(default_factory=Health)
