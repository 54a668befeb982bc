"""One MCP server of a worker: started on first use, shared by every turn, restarted once it died.

The SDK's `Client` is an anyio context: it must be entered and left in one
task. So each start runs an owner task that holds the client open until it
is stopped; turns call through the client from their own tasks (the SDK
routes each answer to its caller). A server that dies (its process exits,
its HTTP endpoint stops answering) fails the calls in flight with
`CONNECTION_CLOSED` and ends or outlives its owner; either way the next use
starts a new one. A start that fails is not tried again before a back-off
has passed, so a broken server cannot be spawned once per call.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import structlog

from ..tools import ToolError
from .config import McpServerConfig, expanded
from .results import bounded

if TYPE_CHECKING:
    from mcp import Client
    from mcp.types import CallToolResult
    from mcp.types import Tool as McpTool

logger = structlog.get_logger("agentbus.mcp")

STOP_TIMEOUT = 10.0
"""The most a server's stop may take: the SDK closes a stdio server's stdin, then terms and kills it (2 s each)."""
RETRY_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)
"""Seconds before another start after 1, 2, … failed starts in a row."""
MAX_LIST_PAGES = 20
"""A server that pages its tool list without end is cut here."""


class McpUnavailable(ToolError):
    """The MCP server could not be started or reached, or it stopped during the call."""

    def __init__(self, server: str, reason: str) -> None:
        super().__init__(f"the MCP server {server!r} is unavailable: {reason}")
        self.server = server
        self.reason = reason


class McpConnection:
    """The one client of one configured MCP server in this worker process."""

    def __init__(self, name: str, config: McpServerConfig) -> None:
        self.name = name
        self.config = config
        self._client: Client | None = None
        self._owner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()
        """Held while (re)starting, so turns that find the server down start it once between them."""
        self._generation = 0
        self._failures = 0
        self._retry_at = 0.0
        self._last_error = ""
        self._closed = False

    async def list_tools(self) -> list[McpTool]:
        """The server's tools (all pages); a connection found closed is restarted and asked once more."""
        from mcp import MCPError
        from mcp.types import CONNECTION_CLOSED

        for attempt in (1, 2):
            client, generation = await self._connected()
            try:
                async with asyncio.timeout(self.config.timeout):
                    return await _all_tools(client)
            except MCPError as exc:
                if exc.code != CONNECTION_CLOSED or attempt == 2:
                    raise McpUnavailable(self.name, f"listing its tools failed: {exc}") from None
                await self._lost(generation, "its connection was closed")
            except TimeoutError:
                raise McpUnavailable(self.name, f"it did not list its tools within {self.config.timeout:g} s") from None
        raise AssertionError("unreachable")

    async def call(self, tool: str, arguments: dict[str, Any], meta: dict[str, Any] | None = None) -> CallToolResult:
        """Call `tool` with `meta` as the request's `_meta`; raise `ToolError` (the model reads it) on a
        timeout, a refusal or a dead server.

        A call is never sent again by itself: the tool may have had its effect
        before the server died. The server is restarted for the next call.
        """
        from mcp import MCPError
        from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        client, generation = await self._connected()
        try:
            return await client.call_tool(
                tool,
                arguments,
                read_timeout_seconds=self.config.timeout,
                meta=meta,  # type: ignore[arg-type]  # a TypedDict of the spec's keys; others pass through
            )
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                await self._lost(generation, f"it stopped during a call of {tool}")
                raise McpUnavailable(
                    self.name, f"it stopped during the call, which may or may not have had its effect ({exc})"
                ) from None
            if exc.code == REQUEST_TIMEOUT:
                raise ToolError(
                    f"{tool} on the MCP server {self.name!r} did not answer within {self.config.timeout:g} s; "
                    "the call was cancelled"
                ) from None
            refusal = bounded(str(exc), self.config.max_result_bytes)  # the server's text, like a result
            raise ToolError(f"the MCP server {self.name!r} refused the call of {tool}: {refusal}") from None

    async def close(self) -> None:
        """Stop the server (a stdio process ends; an HTTP session is ended) for good: the worker is stopping."""
        async with self._lock:
            self._closed = True
            await self._discard()

    async def _connected(self) -> tuple[Client, int]:
        async with self._lock:
            if self._client is not None and self._owner is not None and not self._owner.done():
                return self._client, self._generation
            await self._discard()
            if self._closed:
                raise McpUnavailable(self.name, "the worker is stopping")
            loop = asyncio.get_running_loop()
            if loop.time() < self._retry_at:
                wait = self._retry_at - loop.time()
                raise McpUnavailable(self.name, f"{self._last_error} (next start in {wait:.0f} s)")
            try:
                self._client = await self._start()
            except McpUnavailable as exc:
                self._failures += 1
                self._last_error = exc.reason
                backoff = RETRY_BACKOFF[min(self._failures, len(RETRY_BACKOFF)) - 1]
                self._retry_at = loop.time() + backoff
                logger.warning("mcp_server_start_failed", server=self.name, error=exc.reason, retry_in=backoff)
                raise
            self._failures = 0
            self._generation += 1
            logger.info("mcp_server_started", server=self.name, generation=self._generation)
            return self._client, self._generation

    async def _start(self) -> Client:
        client = _client_for(self.config)
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._owner = asyncio.create_task(self._own(client, ready, self._stop), name=f"mcp-{self.name}")
        try:
            async with asyncio.timeout(self.config.start_timeout):
                await asyncio.shield(ready)
        except TimeoutError:
            ready.cancel()  # nobody reads how the start ends now
            await self._abandon()
            raise McpUnavailable(self.name, f"it did not start within {self.config.start_timeout:g} s") from None
        except asyncio.CancelledError:
            await self._abandon()  # the turn that started it was cancelled: no start is left half done
            raise
        except Exception as exc:
            await self._abandon()
            raise McpUnavailable(self.name, f"it did not start: {_reason(exc)}") from None
        return client

    async def _abandon(self) -> None:
        """Cancel a start that failed or hangs in its handshake (the SDK still stops a spawned process, bounded)."""
        owner, self._owner, self._client = self._owner, None, None
        if owner is not None:
            owner.cancel()
            await asyncio.gather(owner, return_exceptions=True)

    async def _own(self, client: Client, ready: asyncio.Future[None], stop: asyncio.Event) -> None:
        """Hold the client open until `stop` (or until its transport fails)."""
        try:
            async with client:
                ready.set_result(None)
                await stop.wait()
        except Exception as exc:  # the server's failure, reported to whoever waits for the start or logged
            if not ready.done():
                ready.set_exception(exc)
            else:
                logger.warning("mcp_server_lost", server=self.name, error=_reason(exc))

    async def _lost(self, generation: int, why: str) -> None:
        """Forget the client of `generation` (unless a newer one replaced it): the next use starts the server."""
        async with self._lock:
            if generation == self._generation and self._client is not None:
                logger.warning("mcp_server_died", server=self.name, generation=generation, reason=why)
                await self._discard()

    async def _discard(self) -> None:
        owner, self._owner, self._client = self._owner, None, None
        if owner is None:
            return
        self._stop.set()
        try:
            await asyncio.wait_for(owner, STOP_TIMEOUT)
        except TimeoutError:
            logger.warning("mcp_server_stop_timed_out", server=self.name)


def _client_for(config: McpServerConfig) -> Client:
    # The SDK takes half a second to import: only workers whose agents use MCP servers pay for it.
    from mcp import Client, StdioServerParameters
    from mcp.types import Implementation

    info = Implementation(name="agentbus", version="1")
    if config.command is not None:
        params = StdioServerParameters(
            command=config.command, args=list(config.args), env=expanded(config.env) or None, cwd=config.cwd
        )
        # The SDK's response cache is off: each turn lists the tools afresh, which also finds a dead server.
        return Client(params, cache=None, client_info=info)
    assert config.url is not None
    return Client(_HttpTransport(config.url, expanded(config.headers)), cache=None, client_info=info)


class _HttpTransport:
    """The streamable-HTTP transport with the configured headers on every request (the SDK takes them on an
    httpx2 client, which it leaves for its owner to close)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self._url = url
        self._headers = headers
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Any:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        async with AsyncExitStack() as stack:
            http = await stack.enter_async_context(
                httpx2.AsyncClient(headers=self._headers, timeout=httpx2.Timeout(30.0, read=300.0))
            )
            streams = await stack.enter_async_context(streamable_http_client(self._url, http_client=http))
            self._stack = stack.pop_all()
            return streams

    async def __aexit__(self, *exc: object) -> bool | None:
        return await self._stack.__aexit__(*exc)  # type: ignore[arg-type]


async def _all_tools(client: Client) -> list[McpTool]:
    tools: list[McpTool] = []
    cursor: str | None = None
    for _ in range(MAX_LIST_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


def _reason(exc: BaseException) -> str:
    """The innermost message of `exc` (anyio wraps a transport's failure in exception groups)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
