"""agentbus as an MCP server: the gateway's `/mcp`, driven by the official SDK's client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from tests.system import AGENTBUS, System


@asynccontextmanager
async def mcp_client(system: System, headers: dict[str, str] | None = None) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers=headers or {}, timeout=httpx2.Timeout(120))
    async with http, Client(streamable_http_client(system.http_url + "/mcp", http_client=http)) as client:
        yield client


def structured(result: CallToolResult) -> dict:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    return " ".join(part.text for part in result.content if isinstance(part, TextContent))


async def test_an_mcp_client_lists_the_tools_and_chats_with_an_agent_in_one_session(system: System) -> None:
    async with mcp_client(system) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert {"list_agents", "chat", "start_board", "read_board", "read_team"} <= set(tools)
        assert tools["read_board"].annotations is not None and tools["read_board"].annotations.read_only_hint

        first = structured(await client.call_tool("chat", {"message": "hello"}))
        assert first["answer"].startswith('You said: "hello"')
        again = structured(await client.call_tool("chat", {"message": "again", "session_id": first["session_id"]}))
        assert again["session_id"] == first["session_id"]
    messages = await system.messages(first["session_id"])
    assert [m["content"][:5] for m in messages if m["role"] == "user"] == ["hello", "again"]


async def test_an_mcp_client_holds_a_board_and_reads_its_conclusion(system: System) -> None:
    async with mcp_client(system) as client:
        board = structured(
            await client.call_tool("start_board", {"topic": "Is a four-day week worth it?", "rounds": 1})
        )
        assert "Consensus" in board["answer"] or "consensus" in board["answer"]
        view = structured(await client.call_tool("read_board", {"board_id": board["board_id"]}))
        assert view["status"] == "concluded" and view["session_id"] == board["session_id"]
        assert view["topic"] == "Is a four-day week worth it?"


async def test_an_mcp_tool_answers_the_rest_api_s_refusal_as_a_tool_error(system: System) -> None:
    async with mcp_client(system) as client:
        unknown = error_text(await client.call_tool("chat", {"message": "hi", "session_id": "no-such-session"}))
        assert "not found" in unknown
        assert "not found" in error_text(await client.call_tool("read_board", {"board_id": "nothing-here"}))
        assert "rounds" in error_text(await client.call_tool("start_board", {"topic": "x", "rounds": 50}))


async def test_mcp_calls_need_the_credential_rest_calls_need(tmp_path: Path, system_env: dict[str, str]) -> None:
    system = System(tmp_path / "up", {**system_env, "AGENTBUS_API_KEY": "sesame"}).start()
    try:
        async with httpx2.AsyncClient() as http:
            denied = await http.post(
                system.http_url + "/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={"Accept": "application/json, text/event-stream"},
            )
        assert denied.status_code == 401
        async with mcp_client(system, {"X-API-Key": "sesame"}) as client:
            answer = structured(await client.call_tool("chat", {"message": "with the key"}))
        assert answer["answer"].startswith('You said: "with the key"')
    finally:
        assert system.stop() == 0


async def test_agentbus_mcp_serves_the_running_up_of_its_data_dir_over_stdio(tmp_path: Path) -> None:
    system = System(tmp_path / "up", {}).start()  # embedded services: found through the data dir
    try:
        server = StdioServerParameters(command=AGENTBUS, args=["mcp", "--data-dir", str(system.data_dir)])
        async with Client(server) as client:
            agents = structured(await client.call_tool("list_agents", {}))["result"]
            assert "assistant" in {agent["name"] for agent in agents}
            answer = structured(await client.call_tool("chat", {"message": "over stdio"}))
        assert answer["answer"].startswith('You said: "over stdio"')
        assert (await system.messages(answer["session_id"]))[0]["content"] == "over stdio"
    finally:
        assert system.stop() == 0
