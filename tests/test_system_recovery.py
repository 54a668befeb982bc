"""Outages of the database mid-turn and mid-board: each message ends with exactly one answer, and the next works.

The database refuses connections and drops the ones it has for 5 s (what a
restart looks like to every client), while a real `agentbus up` streams a turn
or holds a board. The work resumes from its last recorded step once it is back.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import websockets

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
