"""The MCP servers of one worker process: one connection per server, shared by every turn, stopped with the worker."""

from __future__ import annotations

import asyncio

import structlog

from ..tools import Tool
from .config import McpServerConfig
from .connection import McpConnection, McpUnavailable
from .tools import server_tools

logger = structlog.get_logger("agentbus.mcp")


class McpServers:
    """Connections by server name, each made (and its server started) by the first turn that needs it."""

    def __init__(self) -> None:
        self._connections: dict[str, McpConnection] = {}
        self._offered: dict[str, list[Tool]] = {}
        """What each server offered when it last listed its tools."""

    async def tools(self, configs: dict[str, McpServerConfig], names: list[str]) -> list[Tool]:
        """The tools the servers `names` offer now (asked at once, each within its own timeout).

        A server that cannot be reached offers what it listed last in this
        process, so a turn that had called one of its tools gets a clear
        error from the call rather than an unknown tool; one never listed offers nothing.
        """
        listed = await asyncio.gather(*(self._tools_of(name, configs[name]) for name in names if name in configs))
        return [tool for tools in listed for tool in tools]

    async def close(self) -> None:
        """Stop every server started (at once; each stop is bounded)."""
        await asyncio.gather(*(connection.close() for connection in self._connections.values()))

    async def _tools_of(self, name: str, config: McpServerConfig) -> list[Tool]:
        connection = self._connections.get(name)
        if connection is None:
            connection = self._connections[name] = McpConnection(name, config)
        try:
            listed = await connection.list_tools()
        except McpUnavailable as exc:
            logger.warning("mcp_tools_unavailable", server=name, error=exc.reason)
            return self._offered.get(name, [])
        self._offered[name] = server_tools(connection, listed)
        return self._offered[name]
