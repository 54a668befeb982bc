"""A database outage under a real `agentbus up`: senders hear `service_unavailable` at once, and all is normal after.

The outage is real: the test's own database refuses connections and drops the
ones it has (see `conftest.outage`); the machine's PostgreSQL keeps running.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import websockets

from tests.conftest import outage
from tests.system import System, receive_until


async def answered_again(system: System, timeout: float = 30.0) -> None:
    """Wait until REST reads the database again."""
    async with system.http() as client, asyncio.timeout(timeout):
        while (await client.get("/sessions")).status_code != 200:
            await asyncio.sleep(0.2)


async def test_rest_answers_503_during_a_database_outage_and_200_after(
    system: System, session_id: str, postgres_url: str
) -> None:
    async with system.http() as client:
        async with outage(postgres_url, system.env["AGENTBUS_DATABASE_URL"]):
            listed = await client.get("/sessions")
            sent = await client.post(f"/sessions/{session_id}/messages", json={"content": "during"})
        async with httpx.AsyncClient(base_url=system.http_url) as root:
            await answered_again(system)
            ready_after = await root.get("/readyz")
        after = await client.post(f"/sessions/{session_id}/messages", json={"content": "after"})
    for response in (listed, sent):
        assert response.status_code == 503 and response.json()["code"] == "service_unavailable", response.text
        assert "database" in response.json()["detail"]
    assert ready_after.status_code == 200
    assert after.status_code == 200 and 'You said: "after"' in after.json()["content"]


async def test_a_socket_message_during_a_database_outage_gets_service_unavailable_within_a_second(
    system: System, session_id: str, postgres_url: str
) -> None:
    """Once the outage is a second old (the health view's probe interval), each message is refused at once."""
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        async with outage(postgres_url, system.env["AGENTBUS_DATABASE_URL"]):
            await asyncio.sleep(1.2)
            started = time.monotonic()
            await ws.send(json.dumps({"type": "message", "content": "during"}))
            error = json.loads(await asyncio.wait_for(ws.recv(), 5))
            waited = time.monotonic() - started
        await answered_again(system)
        await asyncio.sleep(1.1)  # the health view probes again
        await ws.send(json.dumps({"type": "message", "content": "after"}))
        frames = await receive_until(ws, "final_answer", timeout=30)
    assert error["type"] == "error" and error["data"]["code"] == "service_unavailable"
    assert "database" in error["data"]["message"] and waited < 1.0
    assert 'You said: "after"' in frames[-1]["content"]
    assert [m["content"] for m in await system.messages(session_id) if m["role"] == "user"] == ["after"]
