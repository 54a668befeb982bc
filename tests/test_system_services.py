"""`agentbus up` supervises its embedded servers: one that dies is restarted, and the clients find it again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import httpx
import websockets

from tests.system import System, process_alive

EMBEDDED = {"AGENTBUS_NATS_URL": "", "AGENTBUS_DATABASE_URL": ""}


async def chat(system: System, session_id: str, content: str) -> str:
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": content}))
        frames: list[dict] = []
        try:
            async with asyncio.timeout(60):
                while (frame := json.loads(await ws.recv()))["type"] != "final_answer":
                    frames.append(frame)
        except TimeoutError:
            raise AssertionError(f"no final answer; frames: {[f for f in frames if f['type'] != 'token']}") from None
        return str(frame["content"])


async def wait_ready(system: System, timeout: float = 30.0) -> None:
    """Wait until the gateway's /readyz answers 200: NATS and the database reachable again."""
    async with httpx.AsyncClient(base_url=system.http_url, timeout=5) as client, asyncio.timeout(timeout):
        while (await client.get("/readyz")).status_code != 200:
            await asyncio.sleep(0.1)


async def test_a_nats_server_killed_with_9_is_restarted_once_and_a_chat_works_again(tmp_path: Path) -> None:
    data_dir = tmp_path / "agentbus"
    system = System(data_dir, EMBEDDED).start(timeout=120, own_group=True)
    try:
        session_id = await system.create_session()
        await chat(system, session_id, "before")
        pid_file = data_dir / "nats" / "nats-server.pid"
        killed = int(pid_file.read_text())

        after = system.log_path.stat().st_size
        os.kill(killed, signal.SIGKILL)
        output = system.wait_for_output('"event": "server_restarted"', after=after, timeout=60)

        assert output.count('"event": "server_died"') == 1 and '"server": "nats-server"' in output
        assert not process_alive(killed)
        assert process_alive(int(pid_file.read_text()))
        await wait_ready(system)
        answer = await chat(system, session_id, "after")
        assert 'You said: "after"' in answer
        assert [m["content"] for m in await system.messages(session_id) if m["role"] == "user"] == ["before", "after"]
    finally:
        assert system.interrupt_group().code == 0


async def test_a_postgres_killed_with_9_is_restarted_once_and_a_chat_works_again(tmp_path: Path) -> None:
    data_dir = tmp_path / "agentbus"
    system = System(data_dir, EMBEDDED).start(timeout=120, own_group=True)
    try:
        session_id = await system.create_session()
        await chat(system, session_id, "before")
        postmaster = data_dir / "pg" / "postmaster.pid"
        killed = int(postmaster.read_text().split("\n", 1)[0])

        after = system.log_path.stat().st_size
        os.kill(killed, signal.SIGKILL)
        output = system.wait_for_output('"event": "server_restarted"', after=after, timeout=60)

        assert output.count('"event": "server_died"') == 1 and '"server": "postgres"' in output
        assert not process_alive(killed)
        await wait_ready(system)
        answer = await chat(system, session_id, "after")
        assert 'You said: "after"' in answer
        assert [m["content"] for m in await system.messages(session_id) if m["role"] == "user"] == ["before", "after"]
    finally:
        assert system.interrupt_group().code == 0
