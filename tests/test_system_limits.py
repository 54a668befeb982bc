"""Entrance limits through a real `agentbus up`: what would not fit is refused clearly at every door, once."""

from __future__ import annotations

import asyncio
import json
import uuid

import nats
import pytest
import websockets

from bus import Bus, publish_command
from bus.commands import CommandRejected, command_backlog
from schemas import CommandRefused, SendMessage, Subjects, codec, limits
from tests.system import System, receive_quiet, receive_until

ONE_MB = 1_000_000


async def test_a_1_mb_message_over_rest_gets_413_while_another_session_keeps_streaming(
    system: System, session_id: str
) -> None:
    other = await system.create_session()
    async with websockets.connect(system.ws_base + other) as ws, system.http() as client:
        await ws.recv()
        too_big = await client.post(f"/sessions/{session_id}/messages", json={"content": "x" * ONE_MB})
        await ws.send(json.dumps({"type": "message", "content": "still here"}))
        final = (await receive_until(ws, "final_answer"))[-1]
    assert too_big.status_code == 413
    assert too_big.json()["code"] == limits.TOO_LARGE and "content" in too_big.json()["detail"]
    assert 'You said: "still here"' in final["content"]
    assert await system.messages(session_id) == []


async def test_a_1_mb_frame_over_the_socket_gets_an_error_frame_and_the_socket_stays_usable(
    system: System, session_id: str
) -> None:
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": "x" * ONE_MB}))
        error = json.loads(await asyncio.wait_for(ws.recv(), 10))
        await ws.send(json.dumps({"type": "message", "content": "small"}))
        final = (await receive_until(ws, "final_answer"))[-1]
    assert error["type"] == "error" and error["data"]["code"] == "frame_too_large"
    assert 'You said: "small"' in final["content"]


async def test_a_message_with_a_nul_character_over_rest_gets_422(system: System, session_id: str) -> None:
    async with system.http() as client:
        response = await client.post(f"/sessions/{session_id}/messages", json={"content": "a\u0000b"})
    assert response.status_code == 422
    assert response.json()["code"] == limits.INVALID_TEXT and "U+0000" in response.json()["detail"]


async def test_a_session_created_with_a_nul_in_its_metadata_gets_422(system: System) -> None:
    async with system.http() as client:
        response = await client.post("/sessions", json={"metadata": {"title": "a\u0000"}})
        sessions = (await client.get("/sessions")).json()
    assert response.status_code == 422 and "metadata.title" in response.json()["detail"]
    assert sessions == []


async def test_a_message_with_a_nul_character_over_the_socket_gets_an_error_frame(
    system: System, session_id: str
) -> None:
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": "a\u0000b"}))
        error = json.loads(await asyncio.wait_for(ws.recv(), 10))
        late = await receive_quiet(ws, 1.0)
        await ws.send(json.dumps({"type": "ping"}))
        pong = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert error["type"] == "error" and error["data"]["code"] == limits.INVALID_TEXT
    assert late == [] and pong == {"type": "pong"}


async def test_publish_command_refuses_a_nul_before_it_reaches_the_bus(system: System, session_id: str) -> None:
    bus = await Bus.connect(system.nats_url, name="test", subjects=Subjects(system.env["AGENTBUS_SUBJECT_PREFIX"]))
    try:
        with pytest.raises(CommandRejected, match="U\\+0000") as rejected:
            await publish_command(bus, session_id, SendMessage(content="a\x00b"))
    finally:
        await bus.close()
    assert rejected.value.code == limits.INVALID_TEXT


async def test_a_raw_nats_publish_with_a_nul_is_refused_on_the_feed_once_and_not_redelivered(
    system: System, session_id: str
) -> None:
    """A client that bypasses `publish_command` gets one `command_refused`; 3 s later nothing is pending."""
    prefix = system.env["AGENTBUS_SUBJECT_PREFIX"]
    bus = await Bus.connect(system.nats_url, name="test", subjects=Subjects(prefix))
    feed = await bus.subscribe(bus.subjects.session_evt(session_id), codec.feed)
    raw = await nats.connect(system.nats_url)
    refusals: list[CommandRefused] = []
    try:
        command = {"type": "send_message", "content": "a\u0000b", "idempotency_key": uuid.uuid4().hex}
        await raw.jetstream().publish(bus.subjects.session_cmd(session_id), json.dumps(command).encode())

        async def collect() -> None:
            async for item in feed:
                if isinstance(item, CommandRefused):
                    refusals.append(item)

        with pytest.raises(TimeoutError):
            async with asyncio.timeout(3.0):  # redelivery would come within ~1 s
                await collect()
        backlog = await command_backlog(bus)
    finally:
        await raw.close()
        await feed.close()
        await bus.close()
    assert [r.code for r in refusals] == ["invalid_command"]
    assert "U+0000" in refusals[0].message
    assert all(c.pending == 0 and c.ack_pending == 0 for c in backlog)
    assert await system.messages(session_id) == []
    async with system.http() as client:  # the refusal is in the log too, with its place in the command stream
        events = [e["event"] for e in (await client.get(f"/sessions/{session_id}/events")).json()]
    [rejected] = [e for e in events if e["type"] == "command_rejected"]
    assert rejected["code"] == "invalid_command" and rejected["sequence"] > 0
