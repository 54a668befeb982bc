"""agentbus as a Model Context Protocol server: chat with an agent, hold a board, read a conclusion.

The tools are thin callers of the gateway's own REST API, made in-process
(`gateway.inprocess`), so an MCP client is refused, authorized and answered
exactly as a REST client with the same credential: the credential headers of
the MCP request (`Authorization`, `X-API-Key`) travel with each call. The
same server is served on the gateway at `/mcp` (streamable HTTP, stateless, so
any gateway behind a proxy can take any request) and over stdio by
`agentbus mcp`, which runs a gateway in-process for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, TypedDict

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations
from starlette.types import ASGIApp, Receive, Scope, Send

from .inprocess import RestRefused, call_rest, credentials_of

_INSTRUCTIONS = (
    "agentbus runs multi-agent conversations: chat with one of its agents in a session, or hold a board "
    "meeting of experts on a topic (they debate over rounds; a moderator concludes with consensus, "
    "dissent and advice). Sessions keep their history, so pass the session_id back to go on talking."
)
_READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True)
BOARD_WAIT = 1800.0
"""Seconds `start_board` waits for the conclusion before it says to read it later."""
BOARD_POLL = 0.5


# The tools' results are TypedDicts, not Structs: the SDK derives each tool's output schema (and its
# structured content) from the return annotation, and it reads TypedDicts, not msgspec.


class Answer(TypedDict):
    session_id: str
    answer: str


class BoardOutcome(TypedDict):
    session_id: str
    board_id: str
    answer: str
    """The moderator's final answer: consensus, dissent and advice."""


class AgentbusTools:
    """The tools, calling the REST API of `app` with the caller's credential (or `default_headers`)."""

    def __init__(self, app: ASGIApp | None = None, *, default_headers: Mapping[str, str] | None = None) -> None:
        self._app = app
        self._default_headers = dict(default_headers or {})

    def bind(self, app: ASGIApp) -> None:
        """Call `app` (set once the gateway that serves the tools exists)."""
        self._app = app

    def server(self) -> MCPServer:
        """An MCP server offering the tools."""
        server: MCPServer = MCPServer("agentbus", instructions=_INSTRUCTIONS)
        server.add_tool(self.list_agents, annotations=_READ_ONLY)
        server.add_tool(self.chat)
        server.add_tool(self.start_board)
        server.add_tool(self.read_board, annotations=_READ_ONLY)
        server.add_tool(self.read_team, annotations=_READ_ONLY)
        return server

    async def list_agents(self, ctx: Context) -> list[dict[str, Any]]:
        """The agents one can chat with, with their descriptions, tools and skills."""
        return list(await self._call(ctx, "GET", "/agents"))

    async def chat(self, message: str, ctx: Context, agent: str = "assistant", session_id: str = "") -> Answer:
        """Send `message` to an agent and return its answer.

        Without `session_id` a new session with `agent` is opened; pass the
        returned `session_id` to go on with the same conversation. A message
        starting with `@board` holds a board meeting, with `@team` runs a team.
        """
        if not session_id:
            session_id = (await self._call(ctx, "POST", "/sessions", {"agent_name": agent}))["session_id"]
        reply = await self._call(ctx, "POST", f"/sessions/{session_id}/messages", {"content": message})
        return Answer(session_id=session_id, answer=reply["content"])

    async def start_board(
        self, topic: str, ctx: Context, rounds: int = 2, experts: list[str] | None = None
    ) -> BoardOutcome:
        """Hold a board meeting of experts on `topic` over `rounds` rounds and return its conclusion.

        `experts` names the experts to invite (the configured defaults if omitted).
        """
        if not 1 <= rounds <= 10:
            raise ToolError("rounds must be between 1 and 10")
        who = f":{','.join(experts)}" if experts else ""
        session_id = (await self._call(ctx, "POST", "/sessions", {"agent_name": "assistant"}))["session_id"]
        content = f"@board{who} rounds={rounds} {topic}"
        await self._call(ctx, "POST", f"/sessions/{session_id}/messages", {"content": content})  # "started"
        messages = await self._call(ctx, "GET", f"/sessions/{session_id}/messages")
        # A board's id is the id of the message that asked for it.
        board_id = next(m["message_id"] for m in messages if m["role"] == "user")
        view = await self._until_ended(ctx, board_id, rounds)
        if view["status"] != "concluded":
            raise ToolError(f"the board {view['status']}: {view.get('failure') or 'no conclusion'}")
        messages = await self._call(ctx, "GET", f"/sessions/{session_id}/messages")
        answer = next(m["content"] for m in reversed(messages) if m["role"] == "assistant" and not m.get("metadata"))
        return BoardOutcome(session_id=session_id, board_id=board_id, answer=answer)

    async def _until_ended(self, ctx: Context, board_id: str, rounds: int) -> dict[str, Any]:
        """The board once it has ended, reporting each round done as progress."""
        deadline = asyncio.get_running_loop().time() + BOARD_WAIT
        while asyncio.get_running_loop().time() < deadline:
            view = await self._call(ctx, "GET", f"/boards/{board_id}")
            if view["status"] in ("concluded", "failed", "cancelled"):
                return dict(view)
            await ctx.report_progress(len(view["rounds"]), rounds)
            # Polled: the REST API has no "wait for the board" (the socket streams it, an MCP call cannot).
            await asyncio.sleep(BOARD_POLL)
        raise ToolError(f"the board {board_id} is still running; read it later with read_board")

    async def read_board(self, board_id: str, ctx: Context) -> dict[str, Any]:
        """A board meeting as recorded: its status, topic, rounds and conclusion (or why it failed)."""
        return dict(await self._call(ctx, "GET", f"/boards/{board_id}"))

    async def read_team(self, team_id: str, ctx: Context) -> dict[str, Any]:
        """A team pipeline as recorded: its task, plan, phases, synthesis and how it ended."""
        return dict(await self._call(ctx, "GET", f"/teams/{team_id}"))

    async def _call(self, ctx: Context, method: str, path: str, body: object = None) -> Any:
        if self._app is None:
            raise ToolError("agentbus is not serving yet")
        headers = {**self._default_headers, **credentials_of(ctx.headers)}
        try:
            return await call_rest(self._app, method, path, headers=headers, body=body)
        except RestRefused as exc:
            raise ToolError(str(exc)) from None


class McpEndpoint:
    """`/mcp`: the tools over streamable HTTP, running while its owner holds `running()`."""

    def __init__(self, tools: AgentbusTools) -> None:
        # Stateless JSON answers: nothing ties a client to one gateway; the gateway authenticates every call
        # (and is reached through proxies under any host name), so the SDK's host check is left off.
        server = tools.server()
        server.streamable_http_app(
            json_response=True,
            stateless_http=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self._manager = server.session_manager
        self._running = False

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self._manager.run():
            self._running = True
            try:
                yield
            finally:
                self._running = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._running:
            raise RuntimeError("the MCP endpoint is not running (McpEndpoint.running())")
        await self._manager.handle_request(scope, receive, send)
