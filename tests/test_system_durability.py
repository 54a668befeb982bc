"""Nothing lost: a restart keeps history, and a killed process finishes its turn after restart."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import websockets

from tests.system import System, receive_until


async def chat(system: System, session_id: str, content: str) -> str:
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": content}))
        return (await receive_until(ws, "final_answer"))[-1]["content"]


async def test_a_second_up_on_the_same_data_dir_keeps_all_history(tmp_path: Path) -> None:
    """The embedded path of `make run`: its own nats-server and PostgreSQL under the data dir."""
    env = {"AGENTBUS_NATS_URL": "", "AGENTBUS_DATABASE_URL": ""}
    system = System(tmp_path / "agentbus", env).start(timeout=120)
    try:
        session_id = await system.create_session()
        answer = await chat(system, session_id, "remember me")
    finally:
        assert system.stop(signal.SIGINT) == 0
    assert not (tmp_path / "agentbus" / "endpoints.json").exists()

    system.start(timeout=120)
    try:
        messages = await system.messages(session_id)
        assert [(m["role"], m["content"]) for m in messages] == [("user", "remember me"), ("assistant", answer)]
        again = await chat(system, session_id, "still there?")
        assert 'Before that you said: "remember me"' in again
    finally:
        assert system.stop(signal.SIGTERM) == 0


async def test_a_turn_interrupted_by_kill_9_completes_once_after_restart(
    tmp_path: Path, system_env: dict[str, str]
) -> None:
    env = {
        **system_env,
        "AGENTBUS_OFFLINE_DELAY": "0.1",
        "AGENTBUS_ACK_WAIT": "2",
    }
    system = System(tmp_path / "data", env).start()
    session_id = await system.create_session()
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": "survive this"}))
        await receive_until(ws, "token")
    assert system.stop(signal.SIGKILL) == -signal.SIGKILL

    system.start()
    try:
        async with asyncio.timeout(30):
            while len(messages := await system.messages(session_id)) < 2:
                await asyncio.sleep(0.2)
        await asyncio.sleep(3)  # longer than the ack wait: a second answer would show up now
        messages = await system.messages(session_id)
        assert [m["role"] for m in messages] == ["user", "assistant"]
        assert messages[1]["content"].startswith('You said: "survive this"')
        async with system.http() as client:
            log = (await client.get(f"/sessions/{session_id}/events")).json()
        types = [e["event"]["type"] for e in log]
        assert types.count("turn_started") == 1 and types.count("turn_completed") == 1
    finally:
        assert system.stop() == 0


async def test_ctrl_c_stops_cleanly_even_after_nats_died(tmp_path: Path) -> None:
    env = {"AGENTBUS_NATS_URL": "", "AGENTBUS_DATABASE_URL": ""}
    system = System(tmp_path / "agentbus", env).start(timeout=120)
    nats_pid = int((tmp_path / "agentbus" / "nats" / "nats-server.pid").read_text())
    os.kill(nats_pid, signal.SIGKILL)
    await asyncio.sleep(1)
    assert system.stop(signal.SIGINT, timeout=30) == 0
    assert "agentbus stopped" in system.log_path.read_text()
