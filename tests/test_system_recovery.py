"""Outages of the database or NATS mid-turn and mid-board: each message ends with exactly one answer, and the next works.

The database refuses connections and drops the ones it has for 5 s (what a
restart looks like to every client), while a real `agentbus up` streams a turn
or holds a board. The work resumes from its last recorded step once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import time
from pathlib import Path

import websockets

from actors.config import DEFAULT_CONFIG
from bus import Bus, publish_command
from bus.embedded import free_port, nats_server_binary
from schemas import CommandRefused, SendMessage, Subjects, codec
from tests.conftest import outage
from tests.system import System, receive_until

OUTAGE_SECONDS = 5.0


async def _answers(system: System, session_id: str) -> list[dict]:
    """The answers in the session's history (a board's speeches and summaries are there too, typed)."""
    messages = await system.messages(session_id)
    return [m for m in messages if m["role"] == "assistant" and not (m.get("metadata") or {}).get("message_type")]


async def test_a_database_outage_mid_turn_ends_with_exactly_one_answer(
    tmp_path: Path, system_env: dict[str, str], postgres_url: str, fresh_database_url: str
) -> None:
    env = {**system_env, "AGENTBUS_OFFLINE_DELAY": "0.05", "AGENTBUS_ACK_WAIT": "3"}
    system = System(tmp_path / "data", env).start()
    try:
        session_id = await system.create_session()
        async with websockets.connect(system.ws_base + session_id) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "message", "content": "keep going through the outage"}))
            await receive_until(ws, "token")
            async with outage(postgres_url, fresh_database_url):
                await asyncio.sleep(OUTAGE_SECONDS)
            back = time.monotonic()
            frames = await receive_until(ws, "final_answer", timeout=60)
            print(f"\nturn: answered {time.monotonic() - back:.1f} s after the database came back")
            assert [f["type"] for f in frames].count("final_answer") == 1
            await ws.send(json.dumps({"type": "message", "content": "and after it"}))
            after = await receive_until(ws, "final_answer", timeout=30)
            assert 'You said: "and after it"' in after[-1]["content"]
        answers = await _answers(system, session_id)
        assert len(answers) == 2, answers  # one answer each, no duplicate
    finally:
        assert system.stop() == 0


async def test_a_database_outage_mid_board_ends_with_exactly_one_conclusion(
    tmp_path: Path, system_env: dict[str, str], postgres_url: str, fresh_database_url: str
) -> None:
    env = {**system_env, "AGENTBUS_OFFLINE_DELAY": "0.01", "AGENTBUS_ACK_WAIT": "3"}
    system = System(tmp_path / "data", env).start()
    try:
        session_id = await system.create_session()
        async with websockets.connect(system.ws_base + session_id) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "message", "content": "@board rounds=2 Should we keep the monolith?"}))
            await receive_until(ws, "expert_speech", timeout=30)
            async with outage(postgres_url, fresh_database_url):
                await asyncio.sleep(OUTAGE_SECONDS)
            back = time.monotonic()
            frames = await receive_until(ws, "final_answer", timeout=90)
            print(f"\nboard: concluded {time.monotonic() - back:.1f} s after the database came back")
            types = [f["type"] for f in frames]
            assert types.count("board_concluded") == 1 and types.count("final_answer") == 1
            await ws.send(json.dumps({"type": "message", "content": "thanks"}))
            after = await receive_until(ws, "final_answer", timeout=30)
            assert 'You said: "thanks"' in after[-1]["content"]
        answers = await _answers(system, session_id)
        assert len(answers) == 2, answers
        history = await system.messages(session_id)
        speeches = [m for m in history if (m.get("metadata") or {}).get("message_type") == "board_speech"]
        keys = [(m["metadata"]["board_round"], m["metadata"]["expert_name"]) for m in speeches]
        assert len(keys) == len(set(keys)), keys  # no speech recorded twice
    finally:
        assert system.stop() == 0


async def test_a_nats_restart_mid_turn_ends_with_exactly_one_answer(tmp_path: Path, system_env: dict[str, str]) -> None:
    port = free_port()
    command = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path / "nats")]

    def start_nats() -> subprocess.Popen[bytes]:
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
            time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    server = start_nats()
    env = {
        **system_env,
        "AGENTBUS_NATS_URL": f"nats://127.0.0.1:{port}",
        "AGENTBUS_OFFLINE_DELAY": "0.05",
        "AGENTBUS_ACK_WAIT": "3",
    }
    system = System(tmp_path / "data", env).start()
    try:
        session_id = await system.create_session()
        async with websockets.connect(system.ws_base + session_id) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "message", "content": "through a nats restart"}))
            await receive_until(ws, "token")
        server.kill()
        server.wait()
        server = start_nats()
        back = time.monotonic()
        async with asyncio.timeout(60):
            while not await _answers(system, session_id):
                await asyncio.sleep(0.2)
        print(f"\nnats: answered {time.monotonic() - back:.1f} s after nats-server came back")
        async with websockets.connect(system.ws_base + session_id) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "message", "content": "and after it"}))
            after = await receive_until(ws, "final_answer", timeout=30)
            assert 'You said: "and after it"' in after[-1]["content"]
        answers = await _answers(system, session_id)
        assert len(answers) == 2, answers
    finally:
        assert system.stop() == 0
        server.terminate()
        server.wait()


async def test_one_sessions_messages_are_recorded_in_the_order_published_across_an_outage(
    tmp_path: Path, system_env: dict[str, str], postgres_url: str, fresh_database_url: str, nats_url: str
) -> None:
    """50 messages published at once, the database gone for a second in the middle: the log keeps their order."""
    config = tmp_path / "agentbus.toml"  # room for all 50 turns at once, so that every message is recorded
    config.write_text(DEFAULT_CONFIG.read_text().replace("max_running_turns = 4", "max_running_turns = 64"))
    system = System(tmp_path / "data", {**system_env, "AGENTBUS_CONFIG": str(config)}).start()
    bus = await Bus.connect(nats_url, name="order-test", subjects=Subjects(system_env["AGENTBUS_SUBJECT_PREFIX"]))
    try:
        session_id = await system.create_session()
        keys = [f"k{i:02}" for i in range(50)]
        for key in keys[:25]:
            await publish_command(bus, session_id, SendMessage(content=key, idempotency_key=key))
        async with outage(postgres_url, fresh_database_url):
            for key in keys[25:]:
                await publish_command(bus, session_id, SendMessage(content=key, idempotency_key=key))
            await asyncio.sleep(1.0)
        # Each message is either recorded or refused (at most 4 turns run at once), never lost.
        refused: set[str] = set()
        feed = await bus.subscribe(bus.subjects.session_evt(session_id), codec.feed)
        try:
            async with asyncio.timeout(60):
                while True:
                    recorded = [m["content"] for m in await system.messages(session_id) if m["role"] == "user"]
                    if len(recorded) + len(refused) >= len(keys):
                        break
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.5):
                            async for item in feed:
                                if isinstance(item, CommandRefused) and item.idempotency_key:
                                    refused.add(item.idempotency_key)
        finally:
            await feed.close()
        print(f"\norder: {len(recorded)} recorded in order, {len(refused)} refused (too many turns at once)")
        assert recorded == [key for key in keys if key in set(recorded)]  # in the order published
        assert set(recorded) | refused == set(keys)
    finally:
        await bus.close()
        assert system.stop() == 0
