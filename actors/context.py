"""What actors of one worker share: the bus, the event log, the model providers, the relay."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec

from bus import Bus
from projections import EventLog
from projections.quotas import QuotaStore

from .config import Config
from .experts.withdrawals import Withdrawals
from .llm import Provider
from .mcp.servers import McpServers
from .quota import QuotaGuard

Relayed = Callable[[int], Awaitable[object]]
"""Wait until the log is published live up to a position (so no streamed chunk overtakes a recorded event)."""


class WorkerContext(msgspec.Struct, frozen=True, kw_only=True):
    """Handles given to every actor the worker creates."""

    bus: Bus
    event_log: EventLog
    provider: Provider
    relayed: Relayed
    default_model: str = "offline"
    config: Config = Config()
    providers: dict[str, Provider] = {}
    """A provider per configured LLM endpoint name (agent turns choose theirs by name)."""
    withdrawals: Withdrawals = msgspec.field(default_factory=Withdrawals)
    """The boards and teams that ended lately: their experts stop streaming for them."""
    mcp: McpServers = msgspec.field(default_factory=McpServers)
    """The worker's MCP servers, started by the first turn that needs each (`config.mcp` says how)."""

    @property
    def quotas(self) -> QuotaGuard:
        """The check before each model call, on the quota store beside the event log."""
        return QuotaGuard(QuotaStore(self.event_log.engine))
