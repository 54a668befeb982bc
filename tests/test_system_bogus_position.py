"""A bogus item on a session's live subject cannot silence its sockets: a position beyond the log is checked first."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import httpx
import websockets

from bus import Bus
from schemas import EventMeta, RecordedEvent, Subjects
from schemas.events import AssistantMessage
from tests.system import System, receive_until
from tests.test_system_tail import chat, tail

FAR_AHEAD = 10**12


def forged(session_id: str) -> RecordedEvent:
    """A final answer no worker wrote, at a position far beyond the log's head."""
    return RecordedEvent(
        position=FAR_AHEAD,
        stream=f"session-{session_id}",
        version=99,
        session_id=session_id,
        event_id="00000000-0000-0000-0000-000000000000",
        schema=1,
        recorded_at=datetime.now(UTC),
        meta=EventMeta(actor="forger"),
        event=AssistantMessage(message_id="forged", content="a forged final answer", agent_name="assistant"),
    )


async def test_an_event_claiming_position_10_to_the_12_is_dropped_and_the_real_answer_still_reaches_the_socket(
    system: System, session_id: str
) -> None:
    """Before the fix the socket's cursor jumped to 10^12 and every real event after it was dropped as already sent."""
    bus = await Bus.connect(system.nats_url, name="forger", subjects=Subjects(system.env["AGENTBUS_SUBJECT_PREFIX"]))
    bogus = forged(session_id)
    try:
        async with websockets.connect(system.ws_base + session_id) as ws:
            await ws.recv()  # connected
            await bus.publish(bus.subjects.session_evt(session_id), bogus)
            await bus.flush()
            await ws.send(json.dumps({"type": "message", "content": "still there?"}))
            frames = await receive_until(ws, "final_answer")
    finally:
        await bus.close()
    assert 'You said: "still there?"' in frames[-1]["content"]
    assert all(frame.get("position", 0) < FAR_AHEAD for frame in frames)
    assert "a forged final answer" not in json.dumps(frames)
    async with httpx.AsyncClient(base_url=system.http_url) as client:
        metrics = (await client.get("/metrics")).text
    assert "agentbus_relay_unproven_items_total 1" in metrics


async def test_agentbus_tail_goes_on_printing_after_an_event_claiming_position_10_to_the_12(
    system: System, session_id: str
) -> None:
    bus = await Bus.connect(system.nats_url, name="forger", subjects=Subjects(system.env["AGENTBUS_SUBJECT_PREFIX"]))
    try:
        async with tail(system, session_id) as running:
            await running.until("session_created")  # subscribed and following
            await bus.publish(bus.subjects.session_evt(session_id), forged(session_id))
            await bus.flush()
            answer = asyncio.create_task(chat(system, session_id, "still printing?"))
            lines = await running.until("assistant_message")
            await answer
            assert await running.interrupt() == 0
    finally:
        await bus.close()
    assert 'You said: "still printing?"' in lines[-1]
    assert not any("a forged final answer" in line for line in lines)
