"""What actors of one worker share: the bus, the log and the model provider."""

from __future__ import annotations

import msgspec

from bus import Bus
from projections import EventLog

from .config import Config
from .llm import Provider


class WorkerContext(msgspec.Struct, frozen=True, kw_only=True):
    """Handles given to every actor the worker creates."""

    bus: Bus
    log: EventLog
    provider: Provider
    default_model: str = "offline"
    config: Config = Config()
    providers: dict[str, Provider] = {}
    """A provider per configured LLM endpoint name (agent turns choose theirs by name)."""
