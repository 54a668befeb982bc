"""A board survives kill -9: restarted, it continues with the next speaker and says nothing twice."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import websockets

from tests.system import System, receive_until

SPEAKERS = ["pragmatist", "skeptic", "visionary"]


async def test_a_board_killed_in_round_2_resumes_with_the_next_speaker_and_records_each_speech_once(
    tmp_path: Path, system_env: dict[str, str]
) -> None:
    env = {
        **system_env,
        "AGENTBUS_OFFLINE_DELAY": "0.01",
        "AGENTBUS_ACK_WAIT": "2",
    }
    system = System(tmp_path / "data", env).start()
    session_id = await system.create_session()
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": "@board rounds=3 Should we rewrite billing in Rust?"}))
        while True:
            frame = (await receive_until(ws, "expert_speech", timeout=60))[-1]
            if frame["data"]["round"] == 2:
                break
        # The second speaker of round 2 is mid-speech: its chunks are streaming, its speech is not recorded.
        chunk = (await receive_until(ws, "expert_speech_chunk", timeout=10))[-1]
        assert (chunk["data"]["round"], chunk["data"]["expert_name"]) == (2, "skeptic")
    assert system.stop(signal.SIGKILL) == -signal.SIGKILL

    system.start()
    try:
        async with asyncio.timeout(60):
            while (
                not (messages := await system.messages(session_id))
                or messages[-1]["agent_name"] != "board_meeting"
                or messages[-1]["metadata"]
            ):
                await asyncio.sleep(0.2)
        await asyncio.sleep(3)  # longer than the ack wait: a second board or answer would show up now
        async with system.http() as client:
            log = [e["event"] for e in (await client.get(f"/sessions/{session_id}/events")).json()]
        types = [e["type"] for e in log]
        speeches = [(e["round"], e["expert_name"]) for e in log if e["type"] == "expert_speech"]
        assert speeches == [(r, name) for r in (1, 2, 3) for name in SPEAKERS]
        assert [e["round"] for e in log if e["type"] == "round_summary"] == [1, 2, 3]
        for once in ("user_message", "board_started", "board_concluded", "assistant_message"):
            assert types.count(once) == 1, once
        answers = [
            m for m in await system.messages(session_id) if m["agent_name"] == "board_meeting" and not m["metadata"]
        ]
        assert len(answers) == 1 and "_3 rounds of discussion_" in answers[0]["content"]
    finally:
        assert system.stop() == 0
