"""Real LLM endpoints from configuration: `AGENTBUS_CONFIG` pointing at a local OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import websockets

from tests.openai_server import OpenAIServer
from tests.system import AGENTBUS, System, receive_until


@pytest.fixture
async def server() -> AsyncIterator[OpenAIServer]:
    async with OpenAIServer() as running:
        yield running


def write_config(path: Path, server: OpenAIServer) -> Path:
    path.write_text(
        f"""
[llm.default]
kind = "openai"
base_url = "{server.base_url}"
model = "scripted"

[llm.failing]
kind = "openai"
base_url = "{server.base_url}"
model = "error"

[llm.limited]
kind = "openai"
base_url = "{server.base_url}"
model = "rate-limited"

[agents.assistant]
tools = ["calculator"]

[agents.resilient]
llm = "failing"
fallback = ["default"]

[agents.fragile]
llm = "limited"

[llm.dropping]
kind = "openai"
base_url = "{server.base_url}"
model = "broken"

[agents.dropping]
llm = "dropping"
fallback = ["default"]

[experts.chair]
is_moderator = true
persona = "Chairs the meeting."

[experts.optimist]
persona = "Sees the upside."

[experts.pessimist]
persona = "Sees the risks."

[experts.flaky]
persona = "Loses the connection mid-sentence."
llm = "dropping"

[board]
max_rounds = 1
default_experts = ["chair", "optimist", "pessimist"]
"""
    )
    return path


@pytest.fixture
async def system(tmp_path: Path, system_env: dict[str, str], server: OpenAIServer) -> AsyncIterator[System]:
    env = {
        **system_env,
        "AGENTBUS_CONFIG": str(write_config(tmp_path / "agents.toml", server)),
    }
    system = System(tmp_path / "data", env).start()
    yield system
    assert system.stop() == 0


async def session(system: System, agent: str) -> str:
    async with system.http() as client:
        created = await client.post("/sessions", json={"agent_name": agent})
        assert created.status_code == 200, created.text
        return created.json()["session_id"]


async def test_an_openai_compatible_server_streams_tokens_and_calls_tools_end_to_end(
    system: System, server: OpenAIServer
) -> None:
    session_id = await session(system, "assistant")
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": "what is 17*23?"}))
        frames = await receive_until(ws, "final_answer")
    assert [f["content"] for f in frames if f["type"] == "thinking"] == ["Let me compute."]
    calls = [f["data"]["data"] for f in frames if f["type"] == "step" and f["data"]["event_type"] == "tool_call"]
    assert [(c["tool"], c["call_id"]) for c in calls] == [("calculator", "call_test_1")]
    tokens = "".join(f["content"] for f in frames if f["type"] == "token")
    assert tokens.endswith("The result is 391.") and frames[-1]["content"] == "The result is 391."
    assert server.requests[-1]["messages"][-1] == {
        "role": "tool",
        "content": "17*23 = 391",
        "tool_call_id": "call_test_1",
    }


async def test_a_failing_endpoint_falls_through_to_the_recovery_tier(system: System) -> None:
    session_id = await session(system, "resilient")
    async with system.http() as client:
        reply = await client.post(f"/sessions/{session_id}/messages", json={"content": "hello"})
        events = (await client.get(f"/sessions/{session_id}/events")).json()
    assert reply.json()["content"] == "Hello from the test model." and "error_struct" not in reply.json()
    [completed] = [e["event"] for e in events if e["event"]["type"] == "turn_completed"]
    assert completed["tier"] == "recovery"


async def test_a_stream_broken_mid_answer_is_discarded_by_the_client_and_the_next_tier_answers(system: System) -> None:
    """No two answers glued together: the partial text's segment is reset before the recovery tier streams."""
    session_id = await session(system, "dropping")
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": "hello"}))
        frames = await receive_until(ws, "final_answer")
    live = [f for f in frames if f["type"] in ("token", "token_reset")]
    [reset] = [f for f in live if f["type"] == "token_reset"]
    broken = reset["data"]["segment"]
    before = [f for f in live[: live.index(reset)] if f["data"]["segment"] == broken]
    after = [f for f in live[live.index(reset) + 1 :]]
    assert "".join(f["content"] for f in before) == "Half an answer"
    assert "".join(f["content"] for f in after) == "Hello from the test model." == frames[-1]["content"]
    assert all(f["data"]["segment"] != broken for f in after)


async def test_an_experts_broken_attempts_are_discarded_by_the_client_before_the_board_asks_again(
    system: System,
) -> None:
    session_id = await session(system, "assistant")
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": "@board:chair,flaky rounds=1 Will it hold?"}))
        frames = await receive_until(ws, "error", timeout=60)  # every attempt breaks: the board fails
    resets = [f["data"] for f in frames if f["type"] == "expert_speech_chunk_reset"]
    assert len(resets) == 3  # one per attempt (`[board] expert_attempts`)
    for reset in resets:
        chunks = [f["data"] for f in frames if f["type"] == "expert_speech_chunk"]
        attempt = [c["content"] for c in chunks if c["segment"] == reset["segment"]]
        assert "".join(attempt) == "Half an answer" and reset["expert_name"] == "flaky"
    assert frames[-1]["data"]["code"] == "board_failed"


async def test_when_no_tier_answers_the_emergency_tier_replies_with_a_structured_error(system: System) -> None:
    session_id = await session(system, "fragile")
    async with system.http() as client:
        reply = (await client.post(f"/sessions/{session_id}/messages", json={"content": "hello"})).json()
    assert reply["fallback_status"] == "emergency" and reply["error_struct"]["code"] == "llm_unavailable"
    assert "429" in reply["error_struct"]["failures"][0] and reply["content"].startswith("Sorry")
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": "again"}))
        frames = await receive_until(ws, "final_answer")
    [error] = [f for f in frames if f["type"] == "error"]
    assert error["data"]["code"] == "llm_unavailable" and "429" in error["data"]["message"]


async def test_an_unknown_agent_is_a_404_and_a_bad_config_stops_the_start(system: System, tmp_path: Path) -> None:
    async with system.http() as client:
        unknown = await client.post("/sessions", json={"agent_name": "nobody"})
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_agent"
    bad = tmp_path / "bad.toml"
    bad.write_text('[agents.a]\ntools = ["teleport"]\n')
    started = await asyncio.to_thread(  # off the event loop, which the session's fixtures share
        subprocess.run,
        [AGENTBUS, "up", "--data-dir", str(tmp_path / "never")],
        env={**system.env, "AGENTBUS_CONFIG": str(bad)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert started.returncode != 0 and "teleport" in started.stderr


async def test_board_experts_speak_through_their_configured_endpoint(system: System, server: OpenAIServer) -> None:
    session_id = await session(system, "assistant")
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": "@board Is the test model any good?"}))
        frames = await receive_until(ws, "final_answer", timeout=60)
    speeches = [f["data"] for f in frames if f["type"] == "expert_speech"]
    assert [s["expert_name"] for s in speeches] == ["optimist", "pessimist"]
    assert all(s["content"] == "Hello from the test model." for s in speeches)
    prompts = [m["content"] for body in server.requests for m in body["messages"] if m["role"] == "user"]
    assert any("Topic: Is the test model any good?" in p and "Expert: optimist" in p for p in prompts)
    assert all(body["model"] == "scripted" for body in server.requests)
