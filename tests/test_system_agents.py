"""Agents that act, through a real `agentbus up` with the offline provider: tools, humans, cancel, modes, REST send."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest
import websockets

from tests.conftest import new_database
from tests.system import System, delete_command_stream, delete_uploads_bucket, receive_quiet, receive_until


@pytest.fixture(scope="module")
async def database_url(postgres_url: str) -> AsyncIterator[str]:
    """One database for this module's `agentbus up`."""
    async with new_database(postgres_url) as url:
        yield url


@pytest.fixture(scope="module")
async def system(tmp_path_factory: pytest.TempPathFactory, nats_url: str, database_url: str) -> AsyncIterator[System]:
    """One `agentbus up` for this module; each test works in a session of its own."""
    prefix = "agents" + uuid.uuid4().hex[:8]
    env = {
        "AGENTBUS_NATS_URL": nats_url,
        "AGENTBUS_DATABASE_URL": database_url,
        "AGENTBUS_SUBJECT_PREFIX": prefix,
        "AGENTBUS_OFFLINE_DELAY": "0.03",
        "AGENTBUS_ANSWER_TIMEOUT": "5",
    }
    system = System(tmp_path_factory.mktemp("agents") / "data", env).start()
    yield system
    assert system.stop() == 0
    await delete_command_stream(nats_url, prefix)
    await delete_uploads_bucket(nats_url, prefix)


@pytest.fixture
async def ws(system: System) -> AsyncIterator[websockets.ClientConnection]:
    session_id = await system.create_session()
    async with websockets.connect(system.ws_base + session_id) as socket:
        assert json.loads(await socket.recv())["type"] == "connected"
        socket.session_id = session_id  # type: ignore[attr-defined]
        yield socket


async def say(
    ws: websockets.ClientConnection, content: str, until: str = "final_answer", **extra: object
) -> list[dict]:
    await ws.send(json.dumps({"type": "message", "content": content, **extra}))
    return await receive_until(ws, until)


def steps(frames: list[dict], event_type: str) -> list[dict]:
    return [f["data"]["data"] for f in frames if f["type"] == "step" and f["data"]["event_type"] == event_type]


async def test_arithmetic_shows_the_calculator_step_then_the_answer(ws: websockets.ClientConnection) -> None:
    frames = await say(ws, "what is 17*23?")
    types = [f["type"] for f in frames]
    [call] = steps(frames, "tool_call")
    [result] = steps(frames, "tool_result")
    assert call["tool"] == "calculator" and json.loads(call["arguments"]) == {"expression": "17*23"}
    assert result["content"] == "17*23 = 391" and not result["is_error"]
    assert types.index("thinking") < types.index("step", types.index("thinking")) < types.index("final_answer")
    assert "391" in frames[-1]["content"] and "token" in types


async def upload(system: System, content: bytes) -> str:
    """Upload `content` through the gateway; its stored name."""
    async with system.http() as client:
        response = await client.post("/upload", files={"file": ("notes.txt", content, "text/plain")})
        response.raise_for_status()
        return response.json()["stored_name"]


async def test_a_denied_confirmation_ends_the_turn_politely(ws: websockets.ClientConnection, system: System) -> None:
    name = await upload(system, b"precious")
    request = (await say(ws, f"please delete {name}", until="confirmation_request"))[-1]["data"]
    assert request["command"].startswith("delete_upload") and request["confirmation_id"]
    await ws.send(
        json.dumps({"type": "confirmation_reply", "confirmation_id": request["confirmation_id"], "approved": False})
    )
    frames = await receive_until(ws, "final_answer")
    [result] = [f for f in frames if f["type"] == "confirmation_result"]
    assert result["data"]["approved"] is False
    assert f"did not delete {name}" in frames[-1]["content"]
    async with system.http() as client:
        assert (await client.get(f"/uploads/{name}")).content == b"precious"


async def test_an_approved_confirmation_runs_the_tool(ws: websockets.ClientConnection, system: System) -> None:
    name = await upload(system, b"bye")
    request = (await say(ws, f"delete {name}", until="confirmation_request"))[-1]["data"]
    await ws.send(
        json.dumps({"type": "confirmation_reply", "confirmation_id": request["confirmation_id"], "approved": True})
    )
    frames = await receive_until(ws, "final_answer")
    assert [f["data"]["approved"] for f in frames if f["type"] == "confirmation_result"] == [True]
    assert steps(frames, "tool_result")[0]["content"] == f"Deleted the upload {name}."
    async with system.http() as client:
        assert (await client.get(f"/uploads/{name}")).status_code == 404


async def test_ask_human_round_trip(ws: websockets.ClientConnection) -> None:
    frame = (await say(ws, "ask me for my name", until="ask_human"))[-1]
    asked = frame["data"]
    assert asked["question"] == "What is your name?"
    # A seed client reads the question and the id at the top level.
    assert (frame["question"], frame["request_id"]) == (asked["question"], asked["request_id"])
    await ws.send(json.dumps({"type": "reply", "request_id": asked["request_id"], "content": "Ada"}))
    frames = await receive_until(ws, "final_answer")
    assert 'You told me: "Ada"' in frames[-1]["content"]


async def test_cancel_stops_the_stream_and_the_next_message_works(ws: websockets.ClientConnection) -> None:
    long = "tell me a story " * 25  # the answer quotes it: over 100 words
    await ws.send(json.dumps({"type": "message", "content": long}))
    await receive_until(ws, "token")
    await ws.send(json.dumps({"type": "cancel"}))
    frames = await receive_until(ws, "result")
    assert frames[-1]["data"]["status"] == "cancelled"
    after = await receive_quiet(ws, 0.5)
    assert [f for f in after if f["type"] in ("token", "final_answer")] == []
    tokens = [f for f in frames if f["type"] == "token"]
    assert len(tokens) < 60  # it stopped early (the cancel travels over JetStream: allow some latency)
    final = (await say(ws, "are you still there?"))[-1]
    assert final["content"].startswith('You said: "are you still there?"')


async def test_cancel_with_nothing_running_answers_cancelled_as_the_seed_did(ws: websockets.ClientConnection) -> None:
    await ws.send(json.dumps({"type": "cancel"}))
    frames = await receive_until(ws, "result")
    assert frames[-1]["data"] == {"status": "cancelled"}
    assert not [f for f in frames if f["type"] == "error"]


async def test_a_fifth_concurrent_turn_gets_an_error(ws: websockets.ClientConnection) -> None:
    for i in range(5):
        # Long enough (150 words at 30 ms a token) that no turn ends before the fifth arrives.
        await ws.send(json.dumps({"type": "message", "content": f"number {i} " + "word " * 150}))
    frames = await receive_until(ws, "error")
    assert frames[-1]["data"]["code"] == "too_many_turns"
    await ws.send(json.dumps({"type": "cancel"}))
    cancelled = 0
    async with asyncio.timeout(10):
        while cancelled < 4:
            frame = json.loads(await ws.recv())
            cancelled += frame["type"] == "result"


async def test_a_skill_prefix_gives_a_skill_match_frame(ws: websockets.ClientConnection, system: System) -> None:
    frames = await say(ws, "@skill:math 6*7")
    [match] = [f for f in frames if f["type"] == "skill_match"]
    assert match["data"]["skill"] == "math" and match["data"]["method"] == "prefix"
    assert "42" in frames[-1]["content"]
    # History keeps what the user meant, as the seed did: the clean content, the skill beside it.
    user = (await system.messages(ws.session_id))[0]  # type: ignore[attr-defined]
    assert (user["content"], user["metadata"]) == ("6*7", {"routing": {"mode": "skill", "skill": "math"}})


async def test_plan_exec_reports_phases_and_violations(ws: websockets.ClientConnection) -> None:
    frames = await say(ws, "what is 17*23?", execution_mode="plan_exec")
    phases = [(f["data"]["previous"], f["data"]["phase"]) for f in frames if f["type"] == "phase_changed"]
    assert phases == [(None, "plan"), ("plan", "execute"), ("execute", "verify")]
    [violation] = [f for f in frames if f["type"] == "phase_violation"]
    assert violation["data"]["tool"] == "calculator" and violation["data"]["phase"] == "plan"
    assert "391" in frames[-1]["content"]


async def test_direct_mode_and_a_model_override_answer_without_tools(ws: websockets.ClientConnection) -> None:
    frames = await say(ws, "what is 2*3?", execution_mode="direct", model="tiny-model")
    assert steps(frames, "tool_call") == []
    [started] = steps(frames, "turn_started")
    assert started["model"] == "tiny-model" and started["execution_mode"] == "direct"
    assert frames[-1]["content"].startswith('You said: "what is 2*3?"')


async def test_an_unknown_confirmation_or_question_gets_an_error_and_ping_a_pong(
    ws: websockets.ClientConnection,
) -> None:
    await ws.send(json.dumps({"type": "confirmation_reply", "confirmation_id": "nope-c1-0", "approved": True}))
    assert (await receive_until(ws, "error"))[-1]["data"]["code"] == "unknown_confirmation"
    await ws.send(json.dumps({"type": "reply", "request_id": "nope-h1-0", "content": "x"}))
    assert (await receive_until(ws, "error"))[-1]["data"]["code"] == "unknown_request"
    await ws.send(json.dumps({"type": "ping"}))
    assert (await receive_until(ws, "pong"))[-1] == {"type": "pong"}


async def test_rest_send_runs_a_whole_turn_and_returns_the_answer(system: System) -> None:
    session_id = await system.create_session()
    async with system.http() as client:
        reply = await client.post(
            f"/sessions/{session_id}/messages", json={"content": "what is 17*23?", "idempotency_key": "k1"}
        )
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert "391" in body["content"] and body["role"] == "assistant" and body["session_id"] == session_id
        assert set(body) == {"message_id", "session_id", "role", "content", "tool_call_id", "agent_name", "created_at"}
        again = await client.post(
            f"/sessions/{session_id}/messages", json={"content": "what is 17*23?", "idempotency_key": "k1"}
        )
        assert again.json() == body  # a retry with the same key answers from the log
        planned = await client.post(
            f"/sessions/{session_id}/messages", json={"content": "what is 2*21?", "execution_mode": "plan_exec"}
        )
        assert "42" in planned.json()["content"]
        assert (await client.post("/sessions/nope/messages", json={"content": "hi"})).status_code == 404
        assert (
            await client.post(f"/sessions/{session_id}/messages", json={"content": "hi", "execution_mode": "x"})
        ).status_code == 422
        slow = await client.post(f"/sessions/{session_id}/messages", json={"content": "delete nothing.txt"})
        assert slow.status_code == 504  # waits for a confirmation nobody gives
        await client.delete(f"/sessions/{session_id}")
        closed = await client.post(f"/sessions/{session_id}/messages", json={"content": "hi"})
        assert closed.status_code == 400 and closed.json()["code"] == "session_closed"
    roles = [m["role"] for m in await system.messages(session_id)]
    assert roles[:4] == ["user", "assistant", "user", "assistant"]
