"""Agent turns that call MCP tools, end to end: `agentbus up` with a stdio and an HTTP MCP server configured,
a scripted model that calls the tool a message names, and the socket a user chats on."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tests.mcp_tool_processes import SERVER, HttpServer, starts
from tests.openai_server import OpenAIServer, _chunk
from tests.system import System, process_alive, receive_until


class CallerModel(OpenAIServer):
    """The model `caller`: a message `call <tool> <json arguments>` makes it call that tool, and once the
    result is back it answers `The tool said: <result>`."""

    async def _complete(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        return StreamingResponse(_caller(body), media_type="text/event-stream")


async def _caller(body: dict[str, Any]) -> AsyncIterator[str]:
    last = body["messages"][-1]
    if last["role"] == "tool":
        yield _chunk({"content": f"The tool said: {last['content']}"})
    elif last["content"].startswith("call "):
        _, name, arguments = last["content"].split(" ", 2)
        function = {"name": name, "arguments": arguments}
        yield _chunk({"tool_calls": [{"index": 0, "id": f"call_{name}", "type": "function", "function": function}]})
    else:
        yield _chunk({"content": "Nothing to call."})
    yield _chunk(usage={"prompt_tokens": 5, "completion_tokens": 5})
    yield "data: [DONE]\n\n"


@pytest.fixture
async def model() -> AsyncIterator[CallerModel]:
    async with CallerModel() as running:
        yield running


@pytest.fixture
def http() -> Iterator[HttpServer]:
    server = HttpServer().start()
    yield server
    server.kill()


@pytest.fixture
def system(tmp_path: Path, system_env: dict[str, str], model: CallerModel, http: HttpServer) -> Iterator[System]:
    config = tmp_path / "agents.toml"
    config.write_text(
        f"""
[llm.default]
kind = "openai"
base_url = "{model.base_url}"
model = "caller"

[mcp.notes]
command = {json.dumps(sys.executable)}
args = [{json.dumps(str(SERVER))}, "stdio"]
env = {{ MCP_TEST_STARTS = {json.dumps(str(tmp_path / "starts"))} }}
timeout = 2
[mcp.notes.tools]
"write_*" = "confirm"
"erase_*" = "deny"

[mcp.remote]
url = "{http.url}"

[agents.assistant]
tools = ["calculator"]
mcp = ["notes", "remote"]
"""
    )
    system = System(tmp_path / "data", {**system_env, "AGENTBUS_CONFIG": str(config)}).start()
    yield system
    if system.process is not None:
        assert system.stop() == 0


def steps(frames: list[dict], event_type: str) -> list[dict]:
    return [f["data"]["data"] for f in frames if f["type"] == "step" and f["data"]["data"]["type"] == event_type]


async def ask(ws: websockets.ClientConnection, content: str) -> list[dict]:
    await ws.send(json.dumps({"type": "message", "content": content}))
    return await receive_until(ws, "final_answer")


async def test_a_turn_calls_mcp_tools_over_stdio_and_http_with_confirmation_crash_and_hang(
    system: System, model: CallerModel, tmp_path: Path
) -> None:
    session_id = await system.create_session()
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        frames = await ask(ws, 'call notes__echo {"text": "hello"}')
        assert frames[-1]["content"] == "The tool said: echo: hello"
        assert steps(frames, "tool_called")[0]["tool"] == "notes__echo"
        assert steps(frames, "tool_result")[0]["content"] == "echo: hello"
        offered = {tool["function"]["name"]: tool["function"] for tool in model.requests[0]["tools"]}
        assert {"calculator", "notes__echo", "notes__write_note", "remote__echo"} <= set(offered)
        assert "notes__erase_everything" not in offered  # denied by notes' policy
        assert "remote__erase_everything" in offered  # a policy is per server: remote has none
        assert offered["notes__echo"]["parameters"]["properties"]["text"]["type"] == "string"

        # Over HTTP, from the same turn's registry.
        frames = await ask(ws, 'call remote__echo {"text": "over http"}')
        assert frames[-1]["content"] == "The tool said: echo: over http"

        # A tool the policy has the user confirm runs only once approved.
        await ws.send(json.dumps({"type": "message", "content": 'call notes__write_note {"text": "buy milk"}'}))
        request = (await receive_until(ws, "confirmation_request"))[-1]["data"]
        assert request["command"].startswith("notes__write_note")
        reply = {"type": "confirmation_reply", "confirmation_id": request["confirmation_id"], "approved": True}
        await ws.send(json.dumps(reply))
        frames = await receive_until(ws, "final_answer")
        assert frames[-1]["content"] == "The tool said: noted: buy milk"

        # A server that dies mid-call is an error the model reads; the next call finds it restarted.
        frames = await ask(ws, "call notes__crash {}")
        crashed = steps(frames, "tool_result")[0]
        assert crashed["is_error"] and "'notes' is unavailable: it stopped during the call" in crashed["content"]
        frames = await ask(ws, 'call notes__echo {"text": "after the crash"}')
        assert frames[-1]["content"] == "The tool said: echo: after the crash"
        assert len(starts(tmp_path / "starts")) == 2

        # A call that hangs is cut at the server's timeout; the turn answers.
        frames = await ask(ws, "call notes__hang {}")
        hung = steps(frames, "tool_result")[0]
        assert hung["is_error"] and "did not answer within 2 s" in hung["content"]
        assert frames[-1]["content"].startswith("The tool said: error: hang on the MCP server 'notes'")

    async with system.http() as client:
        log = (await client.get(f"/sessions/{session_id}/events", params={"after": 0, "limit": 1000})).json()
    results = [e["event"] for e in log if e["event"]["type"] == "tool_result"]
    assert [r["tool"] for r in results] == [
        "notes__echo",
        "remote__echo",
        "notes__write_note",
        "notes__crash",
        "notes__echo",
        "notes__hang",
    ]
    # The worker stops its servers when it stops (they run in sessions of their own: no Ctrl-C reaches them).
    assert system.stop() == 0
    assert not [pid for pid in starts(tmp_path / "starts") if process_alive(pid)]


async def test_the_offline_model_calls_an_mcp_tool_a_message_names(tmp_path: Path, system_env: dict[str, str]) -> None:
    """What `make run` shows with an MCP server configured and no model: the tool listed, called, its result used."""
    config = tmp_path / "agents.toml"
    config.write_text(
        f"""
[mcp.notes]
command = {json.dumps(sys.executable)}
args = [{json.dumps(str(SERVER))}, "stdio"]

[agents.assistant]
mcp = ["notes"]
"""
    )
    system = System(tmp_path / "data", {**system_env, "AGENTBUS_CONFIG": str(config)}).start()
    try:
        session_id = await system.create_session()
        async with websockets.connect(system.ws_base + session_id) as ws:
            await ws.recv()
            frames = await ask(ws, 'notes__echo {"text": "no model needed"}')
        assert steps(frames, "tool_result")[0]["content"] == "echo: no model needed"
        assert frames[-1]["content"] == "echo: no model needed (offline assistant)"
    finally:
        assert system.stop() == 0
