"""An event too big for NATS reaches the socket all the same: the relay's `event_omitted` is read from the log."""

from __future__ import annotations

import asyncio
import json

import websockets

from bus import Bus
from schemas import EventOmitted, Subjects
from tests.system import System, receive_quiet, receive_until


async def test_an_omitted_event_is_read_from_the_log_and_sent_once_as_if_it_came_live(
    system: System, session_id: str
) -> None:
    """The socket (connected without `after`) never saw `session_created`; its `event_omitted`, sent twice, brings it once."""
    async with system.http() as client:
        [created] = (await client.get(f"/sessions/{session_id}/events")).json()
    bus = await Bus.connect(system.nats_url, name="test", subjects=Subjects(system.env["AGENTBUS_SUBJECT_PREFIX"]))
    omitted = EventOmitted(
        position=created["position"],
        stream=created["stream"],
        event_type="session_created",
        reason="larger than the server's max_payload",
    )
    try:
        async with websockets.connect(system.ws_base + session_id) as ws:
            await ws.recv()
            for _ in range(2):
                await bus.publish(bus.subjects.session_evt(session_id), omitted)
            frames = await receive_until(ws, "session_created", timeout=10)
            frames += await receive_quiet(ws, 1.0)  # the second copy brings nothing
            await ws.send(json.dumps({"type": "message", "content": "and then"}))
            live = await receive_until(ws, "final_answer")
    finally:
        await bus.close()
    assert frames == [
        {"type": "session_created", "position": created["position"], "data": created["event"]},
    ]
    assert 'You said: "and then"' in live[-1]["content"]
    assert all(f.get("position", created["position"] + 1) > created["position"] for f in live)


async def test_an_omitted_event_of_another_session_is_ignored(system: System, session_id: str) -> None:
    other = await system.create_session()
    async with system.http() as client:
        [created] = (await client.get(f"/sessions/{other}/events")).json()
    bus = await Bus.connect(system.nats_url, name="test", subjects=Subjects(system.env["AGENTBUS_SUBJECT_PREFIX"]))
    stray = EventOmitted(
        position=created["position"], stream=created["stream"], event_type="session_created", reason="x"
    )
    try:
        async with websockets.connect(system.ws_base + session_id) as ws:
            await ws.recv()
            await bus.publish(bus.subjects.session_evt(session_id), stray)
            frames = await receive_quiet(ws, 1.0)
            await ws.send(json.dumps({"type": "ping"}))
            pong = json.loads(await asyncio.wait_for(ws.recv(), 5))
    finally:
        await bus.close()
    assert frames == [] and pong == {"type": "pong"}
