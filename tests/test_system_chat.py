"""A chat turn through a real `agentbus up`: WebSocket in, tokens and the answer out, history in the log."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import httpx
import pytest
import websockets

from bus import Bus
from schemas import CommandRefused, Subjects, codec
from tests.system import System, receive_quiet, receive_until


async def test_a_message_streams_tokens_then_the_final_answer(system: System, session_id: str) -> None:
    async with websockets.connect(system.ws_base + session_id) as ws:
        connected = json.loads(await ws.recv())
        assert connected == {"type": "connected", "session_id": session_id}
        await ws.send(json.dumps({"type": "message", "content": "hello"}))
        frames = await receive_until(ws, "final_answer")
    tokens = [f for f in frames if f["type"] == "token"]
    final = frames[-1]
    assert len(tokens) > 3
    assert "".join(t["content"] for t in tokens) == final["content"]
    assert 'You said: "hello"' in final["content"] and final["is_final"] is True
    assert all("position" not in t for t in tokens)


async def test_every_persisted_event_reaches_the_socket_with_its_position_in_order(
    system: System, session_id: str
) -> None:
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": "hello"}))
        frames = await receive_until(ws, "final_answer")
        frames += await receive_quiet(ws, 0.3)
    async with system.http() as client:
        log = (await client.get(f"/sessions/{session_id}/events")).json()
    persisted = [f for f in frames if "position" in f]
    assert [f["position"] for f in persisted] == [e["position"] for e in log][1:]  # all but session_created
    assert [e["event"]["type"] for e in log] == [
        "session_created", "user_message", "turn_started", "model_called", "turn_completed", "assistant_message",
    ]  # fmt: skip
    assert [f["type"] for f in persisted] == ["user_message", "step", "model_called", "step", "final_answer"]


async def test_the_history_holds_both_messages(system: System, session_id: str) -> None:
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": "hello"}))
        final = (await receive_until(ws, "final_answer"))[-1]
    messages = await system.messages(session_id)
    assert [(m["role"], m["content"]) for m in messages] == [("user", "hello"), ("assistant", final["content"])]
    assert messages[1]["agent_name"] == "assistant"
    assert set(messages[0]) == {
        "message_id",
        "session_id",
        "role",
        "content",
        "tool_call_id",
        "agent_name",
        "created_at",
        "metadata",
    }


async def test_the_agent_answers_from_the_conversation_not_a_constant(system: System, session_id: str) -> None:
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": "first question"}))
        await receive_until(ws, "final_answer")
        await ws.send(json.dumps({"type": "message", "content": "second one"}))
        final = (await receive_until(ws, "final_answer"))[-1]
    assert 'You said: "second one"' in final["content"]
    assert 'Before that you said: "first question"' in final["content"]
    assert "message 2" in final["content"]


async def test_reconnecting_after_a_mid_turn_position_yields_the_rest_of_the_turn_once(
    system: System, session_id: str
) -> None:
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": "hello"}))
        first = [f for f in await receive_until(ws, "final_answer") if "position" in f]
    mid = first[1]["position"]  # turn_started: the turn is under way
    async with websockets.connect(system.ws_base + session_id + f"?after={mid}") as ws:
        assert json.loads(await ws.recv())["type"] == "connected"
        replayed = await receive_quiet(ws, 0.5)
    assert replayed == [f for f in first if f["position"] > mid]


async def test_reconnecting_with_after_zero_replays_the_whole_session_then_goes_live(
    system: System, session_id: str
) -> None:
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": "one"}))
        await receive_until(ws, "final_answer")
    async with websockets.connect(system.ws_base + session_id + "?after=0") as ws:
        await ws.recv()
        replayed = await receive_quiet(ws, 0.5)
        await ws.send(json.dumps({"type": "message", "content": "two"}))
        live = await receive_until(ws, "final_answer")
    positions = [f["position"] for f in replayed + live if "position" in f]
    assert positions == sorted(set(positions))
    assert [f["type"] for f in replayed][:1] == ["session_created"]
    assert live[-1]["content"].startswith('You said: "two"')


async def test_publishing_twice_with_one_key_yields_one_user_message(system: System, session_id: str) -> None:
    key = uuid.uuid4().hex
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        first = system.publish("--session", session_id, "--idempotency-key", key, "from a service")
        second = system.publish("--session", session_id, "--idempotency-key", key, "from a service")
        await receive_until(ws, "final_answer")
        assert await receive_quiet(ws, 1.0) == []
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert json.loads(first.stdout)["duplicate"] is False and json.loads(second.stdout)["duplicate"] is True
    messages = await system.messages(session_id)
    assert [m["role"] for m in messages] == ["user", "assistant"]


async def refusals(system: System, session_id: str, *publish_args: str) -> list[CommandRefused]:
    """Publish with the CLI and collect what the session's live feed refuses."""
    bus = await Bus.connect(system.nats_url, name="test", subjects=Subjects(system.env["AGENTBUS_SUBJECT_PREFIX"]))
    feed = await bus.subscribe(bus.subjects.session_evt(session_id), codec.feed)
    try:
        result = system.publish("--session", session_id, *publish_args)
        assert result.returncode == 2 and "refused the message" in result.stderr, result.stderr
        async with asyncio.timeout(10):
            async for item in feed:
                if isinstance(item, CommandRefused):
                    return [item]
    finally:
        await feed.close()
        await bus.close()
    return []


async def test_a_message_published_to_an_unknown_session_is_refused_on_its_feed(system: System) -> None:
    [refused] = await refusals(system, "no-such-session", "hi")
    assert refused.code == "unknown_session"


async def test_a_closed_session_refuses_later_messages(system: System, session_id: str) -> None:
    async with system.http() as client:
        closed = await client.delete(f"/sessions/{session_id}")
        assert closed.json() == {"status": "closed", "session_id": session_id}
        assert (await client.get(f"/sessions/{session_id}")).json()["status"] == "closed"
    [refused] = await refusals(system, session_id, "too late")
    assert refused.code == "session_closed"
    assert await system.messages(session_id) == []


async def test_bad_frames_get_an_error_and_the_socket_stays_usable(system: System, session_id: str) -> None:
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send("{not json")
        assert json.loads(await ws.recv())["type"] == "error"
        await ws.send(json.dumps({"type": "dance"}))
        unknown = json.loads(await ws.recv())
        assert unknown["type"] == "error" and "dance" in unknown["data"]["message"]
        await ws.send(json.dumps({"type": "message", "content": "x" * 100_000}))
        oversized = json.loads(await ws.recv())
        assert oversized["type"] == "error" and oversized["data"]["code"] == "frame_too_large"
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}


async def test_an_empty_message_is_refused_with_an_error_frame(system: System, session_id: str) -> None:
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": "   "}))
        frames = await receive_until(ws, "error")
    assert frames[-1]["data"]["code"] == "empty_message"


async def test_a_socket_for_an_unknown_session_gets_an_error_and_is_closed(system: System) -> None:
    async with websockets.connect(system.ws_base + "nope") as ws:
        error = json.loads(await ws.recv())
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
    assert error["type"] == "error" and "not found" in error["data"]["message"]


async def test_rest_answers_bad_requests_clearly(system: System) -> None:
    async with system.http() as client:
        assert (await client.get("/sessions/unknown")).status_code == 404
        assert (await client.get("/sessions/bad.id")).status_code == 400
        unknown_agent = await client.post("/sessions", json={"agent_name": "nobody"})
        assert unknown_agent.status_code == 404 and "nobody" in unknown_agent.json()["detail"]
        assert (await client.post("/sessions", content=b"{oops")).status_code == 422
        session_id = (await client.post("/sessions", json={})).json()["session_id"]
        assert (await client.get(f"/sessions/{session_id}/messages?limit=0")).status_code == 400


async def test_health_endpoints_answer(system: System) -> None:
    async with httpx.AsyncClient(base_url=system.http_url) as client:
        assert (await client.get("/healthz")).text == "ok"
        assert (await client.get("/readyz")).status_code == 200
        page = await client.get("/")
        assert page.status_code == 200 and "agentbus" in page.text


async def test_with_an_api_key_a_socket_without_it_is_closed_with_4001(
    tmp_path: Path, system_env: dict[str, str]
) -> None:
    env = {
        **system_env,
        "AGENTBUS_API_KEY": "s3cret",
    }
    system = System(tmp_path / "keyed", env).start()
    try:
        async with httpx.AsyncClient(base_url=system.http_url + "/api/v1/chat") as client:
            assert (await client.get("/sessions")).status_code == 401
            created = await client.post("/sessions", json={}, headers={"X-API-Key": "s3cret"})
            session_id = created.json()["session_id"]
        async with websockets.connect(system.ws_base + session_id + "?api_key=wrong") as ws:
            assert json.loads(await ws.recv())["type"] == "error"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
        async with websockets.connect(system.ws_base + session_id + "?api_key=s3cret") as ws:
            assert json.loads(await ws.recv())["type"] == "connected"
    finally:
        assert system.stop() == 0


async def test_projections_rebuild_recreates_the_same_history_from_the_log(system: System, session_id: str) -> None:
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": "keep me"}))
        await receive_until(ws, "final_answer")
    before = await system.messages(session_id)
    rebuilt = system.run_cli("projections", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert await system.messages(session_id) == before


async def test_metrics_count_sockets_frames_and_commands_and_show_the_log_head(system: System, session_id: str) -> None:
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": "count me"}))
        frames = await receive_until(ws, "final_answer")
        async with httpx.AsyncClient(base_url=system.http_url) as client:
            text = (await client.get("/metrics")).text
    values = {line.split()[0]: int(line.split()[1]) for line in text.splitlines() if line and not line.startswith("#")}
    assert values["agentbus_ws_open"] == 1 and values["agentbus_ws_accepted_total"] == 1
    assert values["agentbus_commands_published_total"] == 1 and values["agentbus_commands_failed_total"] == 0
    assert values["agentbus_ws_frames_sent_total"] >= len(frames)
    assert values["agentbus_log_position"] >= max(f["position"] for f in frames if "position" in f)
    assert values["agentbus_read_models_lag"] >= 0
