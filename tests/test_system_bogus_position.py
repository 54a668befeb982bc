"""A bogus item on a session's live subject cannot silence its sockets: a position beyond the log is checked first."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import websockets

from bus import Bus
from schemas import EventMeta, RecordedEvent, Subjects
from schemas.events import AssistantMessage
from tests.system import System, receive_until

FAR_AHEAD = 10**12


async def test_an_event_claiming_position_10_to_the_12_is_dropped_and_the_real_answer_still_reaches_the_socket(
    system: System, session_id: str
) -> None:
    """Before the fix the socket's cursor jumped to 10^12 and every real event after it was dropped as already sent."""
    bus = await Bus.connect(system.nats_url, name="forger", subjects=Subjects(system.env["AGENTBUS_SUBJECT_PREFIX"]))
    bogus = RecordedEvent(
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
