"""Tools of MCP servers: configured per server (`[mcp.<name>]`), named by agents, offered beside the built-in ones.

`McpServers` (in `servers`) holds one worker's connections; it imports the
SDK only when a server starts, so loading the configuration stays cheap.
"""

from .config import MAX_CALL_TIMEOUT, MAX_RESULT_BYTES, SEPARATOR, McpServerConfig, Policy, check_servers

__all__ = ["MAX_CALL_TIMEOUT", "MAX_RESULT_BYTES", "SEPARATOR", "McpServerConfig", "Policy", "check_servers"]
