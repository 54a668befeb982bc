"""A question to the user survives a crash: kill -9 while a confirmation is pending, restart, answer it."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import websockets

from tests.system import System, receive_until


async def test_a_confirmation_pending_at_kill_9_completes_the_turn_once_after_restart(
    tmp_path: Path, system_env: dict[str, str]
) -> None:
    env = {**system_env, "AGENTBUS_ACK_WAIT": "2"}
    system = System(tmp_path / "data", env).start()
    async with system.http() as client:
        uploaded = await client.post("/upload", files={"file": ("crash.txt", b"x", "text/plain")})
        name = uploaded.json()["stored_name"]
    session_id = await system.create_session()
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": f"delete {name}"}))
        request = (await receive_until(ws, "confirmation_request"))[-1]
    assert system.stop(signal.SIGKILL) == -signal.SIGKILL

    system.start()
    try:
        async with websockets.connect(system.ws_base + session_id + f"?after={request['position']}") as ws:
            await ws.recv()
            reply = {
                "type": "confirmation_reply",
                "confirmation_id": request["data"]["confirmation_id"],
                "approved": True,
            }
            await ws.send(json.dumps(reply))
            frames = await receive_until(ws, "final_answer", timeout=30)
        assert [f["data"]["approved"] for f in frames if f["type"] == "confirmation_result"] == [True]
        assert f"Deleted the upload {name}" in frames[-1]["content"]
        async with system.http() as client:
            assert (await client.get(f"/uploads/{name}")).status_code == 404
        messages = await system.messages(session_id)
        assert [m["role"] for m in messages] == ["user", "assistant"]
        async with system.http() as client:
            types = [e["event"]["type"] for e in (await client.get(f"/sessions/{session_id}/events")).json()]
        for once in (
            "turn_started",
            "tool_called",
            "confirmation_requested",
            "confirmation_resolved",
            "tool_result",
            "turn_completed",
        ):
            assert types.count(once) == 1, (once, types)
    finally:
        assert system.stop() == 0
