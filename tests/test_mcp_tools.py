"""A worker's MCP servers against a real MCP server (tests/mcp_tool_server.py, the official SDK), over stdio and HTTP."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest

from actors.mcp import McpServerConfig
from actors.mcp.connection import McpConnection, McpUnavailable
from actors.mcp.servers import McpServers
from actors.tools import Tool, ToolContext, ToolError
from tests.mcp_tool_processes import HttpServer, starts, stdio_config
from tests.system import process_alive

POLICY = {"write_*": "confirm", "erase_*": "deny"}
NO_BUS = ToolContext(bus=None)  # type: ignore[arg-type]  # MCP tools reach their server, never the bus


@pytest.fixture
async def servers() -> AsyncIterator[McpServers]:
    servers = McpServers()
    yield servers
    await servers.close()


@pytest.fixture
def http() -> Iterator[HttpServer]:
    server = HttpServer().start()
    yield server
    server.kill()


async def tools_of(servers: McpServers, config: McpServerConfig, name: str = "notes") -> dict[str, Tool]:
    return {tool.name: tool for tool in await servers.tools({name: config}, [name])}


async def test_a_stdio_servers_tools_are_offered_beside_the_built_ins_by_policy_with_their_json_schemas(
    servers: McpServers, tmp_path: Path
) -> None:
    tools = await tools_of(servers, stdio_config(tmp_path / "starts", tools=POLICY))
    assert "notes__erase_everything" not in tools  # denied: never offered
    assert {"notes__echo", "notes__write_note", "notes__picture", "notes__crash", "notes__hang"} <= set(tools)
    echo, note = tools["notes__echo"], tools["notes__write_note"]
    assert (echo.needs_confirmation, note.needs_confirmation) == (False, True)
    assert (echo.idempotent, note.idempotent) == (True, False)  # from the tools' idempotentHint
    spec = echo.spec()
    assert spec.parameters["properties"]["text"]["type"] == "string" and spec.parameters["required"] == ["text"]
    assert "echo" in spec.description and "notes" in spec.description
    assert await echo.call('{"text": "hi"}', NO_BUS) == "echo: hi"
    # The model's name has no dot; the server is still asked for its own name.
    assert await tools["notes__lookup_v2"].call('{"key": "k"}', NO_BUS) == "found k"
    assert len(starts(tmp_path / "starts")) == 1  # started by the first listing, once


async def test_the_turns_of_a_worker_share_one_server_process(servers: McpServers, tmp_path: Path) -> None:
    config = stdio_config(tmp_path / "starts")
    for text in ("one", "two", "three"):
        tools = await tools_of(servers, config)
        assert await tools["notes__echo"].call(f'{{"text": "{text}"}}', NO_BUS) == f"echo: {text}"
    assert len(starts(tmp_path / "starts")) == 1


async def test_images_are_described_and_a_long_result_is_cut_to_max_result_bytes(
    servers: McpServers, tmp_path: Path
) -> None:
    tools = await tools_of(servers, stdio_config(tmp_path / "starts", max_result_bytes=1000))
    assert await tools["notes__picture"].call("{}", NO_BUS) == "[image: image/png, 108 bytes, not shown]"
    cut = await tools["notes__long_text"].call('{"size": 5000}', NO_BUS)
    assert len(cut.encode()) <= 1000 and cut.startswith("éé") and cut.endswith("shown]")
    assert "10000 bytes in all" in cut


async def test_a_server_that_crashes_mid_call_is_a_tool_error_and_the_next_call_restarts_it(
    servers: McpServers, tmp_path: Path
) -> None:
    tools = await tools_of(servers, stdio_config(tmp_path / "starts"))
    with pytest.raises(ToolError, match="'notes' is unavailable: it stopped during the call"):
        await tools["notes__crash"].call("{}", NO_BUS)
    assert await tools["notes__echo"].call('{"text": "again"}', NO_BUS) == "echo: again"
    first, second = starts(tmp_path / "starts")
    assert first != second  # a new process answered


async def test_a_server_that_died_between_turns_is_restarted_by_the_next_turns_listing(
    servers: McpServers, tmp_path: Path
) -> None:
    await tools_of(servers, stdio_config(tmp_path / "starts"))
    (first,) = starts(tmp_path / "starts")
    os.kill(first, 9)
    tools = await tools_of(servers, stdio_config(tmp_path / "starts"))
    assert await tools["notes__echo"].call('{"text": "back"}', NO_BUS) == "echo: back"
    assert len(starts(tmp_path / "starts")) == 2


async def test_a_call_that_hangs_is_cut_at_the_per_call_timeout_and_the_server_keeps_answering(
    servers: McpServers, tmp_path: Path
) -> None:
    tools = await tools_of(servers, stdio_config(tmp_path / "starts", timeout=0.5))
    with pytest.raises(ToolError, match=r"hang on the MCP server 'notes' did not answer within 0.5 s"):
        await tools["notes__hang"].call("{}", NO_BUS)
    assert await tools["notes__echo"].call('{"text": "still here"}', NO_BUS) == "echo: still here"
    assert len(starts(tmp_path / "starts")) == 1  # a slow call is not a dead server


async def test_a_server_that_cannot_start_offers_no_tools_rather_than_holding_the_turn(servers: McpServers) -> None:
    broken = McpServerConfig(command="false")
    assert await servers.tools({"broken": broken}, ["broken"]) == []


async def test_an_http_server_gets_the_configured_headers_with_references_to_the_environment(
    servers: McpServers, http: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_TEST_TOKEN", "s3cret")
    config = McpServerConfig(url=http.url, headers={"X-Team": "blue", "Authorization": "Bearer ${MCP_TEST_TOKEN}"})
    tools = await tools_of(servers, config, "remote")
    assert await tools["remote__echo"].call('{"text": "over http"}', NO_BUS) == "echo: over http"
    assert await tools["remote__header"].call('{"name": "X-Team"}', NO_BUS) == "X-Team: blue"
    assert await tools["remote__header"].call('{"name": "Authorization"}', NO_BUS) == "Authorization: Bearer s3cret"


async def test_an_http_server_that_dies_is_a_tool_error_and_is_reached_again_once_it_is_back(
    servers: McpServers, http: HttpServer
) -> None:
    tools = await tools_of(servers, McpServerConfig(url=http.url), "remote")
    http.kill()
    with pytest.raises(ToolError, match="'remote' is unavailable"):
        await tools["remote__echo"].call('{"text": "anyone?"}', NO_BUS)
    http.start()
    tools = await tools_of(servers, McpServerConfig(url=http.url), "remote")
    assert await tools["remote__echo"].call('{"text": "back"}', NO_BUS) == "echo: back"


async def test_closing_stops_the_server_process_and_no_call_starts_it_again(tmp_path: Path) -> None:
    servers = McpServers()
    tools = await tools_of(servers, stdio_config(tmp_path / "starts"))
    (pid,) = starts(tmp_path / "starts")
    await servers.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ToolError, match="the worker is stopping"):
        await tools["notes__echo"].call('{"text": "late"}', NO_BUS)
    assert len(starts(tmp_path / "starts")) == 1


async def test_a_server_that_never_answers_its_handshake_is_given_up_at_start_timeout(servers: McpServers) -> None:
    silent = McpServerConfig(command="sleep", args=["600"], start_timeout=0.5)
    assert await servers.tools({"silent": silent}, ["silent"]) == []  # the turn goes on without its tools


async def test_a_server_that_fails_to_start_is_not_spawned_again_before_its_back_off(tmp_path: Path) -> None:
    spawns = tmp_path / "spawns"
    failing = McpServerConfig(
        command=sys.executable, args=["-c", f"open({str(spawns)!r}, 'a').write('x')"], start_timeout=10
    )
    connection = McpConnection("failing", failing)
    try:
        with pytest.raises(McpUnavailable, match="it did not start"):
            await connection.list_tools()
        with pytest.raises(McpUnavailable, match=r"next start in 1 s"):
            await connection.call("echo", {"text": "now?"})
        assert spawns.read_text() == "x"  # one spawn: the second use did not try again within the back-off
    finally:
        await connection.close()


async def test_a_turn_cancelled_while_its_server_starts_leaves_no_process_behind(tmp_path: Path) -> None:
    spawns = tmp_path / "spawns"
    script = f"import os, time; open({str(spawns)!r}, 'a').write(f'{{os.getpid()}}\\n'); time.sleep(600)"
    connection = McpConnection("slow", McpServerConfig(command=sys.executable, args=["-c", script]))
    listing = asyncio.create_task(connection.list_tools())
    async with asyncio.timeout(30):
        while not starts(spawns):  # the process is up (it never answers the handshake)
            await asyncio.sleep(0.02)
    listing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await listing
    (pid,) = starts(spawns)
    assert not process_alive(pid)
    await connection.close()


async def test_a_call_hands_its_effect_key_and_attempt_to_the_server_in_the_requests_meta(
    servers: McpServers, tmp_path: Path
) -> None:
    """What lets an outside service carry a repeated call out once: `_meta` names the call of the turn."""
    config = stdio_config(tmp_path / "starts")
    config = msgspec.structs.replace(config, env={**config.env, "MCP_TEST_EFFECTS": str(tmp_path / "effects")})
    tools = await tools_of(servers, config)
    assert (tools["notes__mark"].idempotent, tools["notes__mark_idempotent"].idempotent) == (False, True)
    context = ToolContext(bus=None, effect_key="turn1:call_1", attempt=2)  # type: ignore[arg-type]
    assert await tools["notes__mark"].call('{"label": "a"}', context) == "marked a (run 1)"
    assert await tools["notes__mark"].call('{"label": "b"}', NO_BUS) == "marked b (run 1)"  # no turn, no key
    assert (tmp_path / "effects").read_text().splitlines() == ["a turn1:call_1 2", "b - -"]
