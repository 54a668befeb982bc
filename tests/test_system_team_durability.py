"""A team survives kill -9: restarted, it continues from its log, and no phase is done twice."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from pathlib import Path

import websockets

from tests.system import System, receive_until


async def test_a_team_killed_in_its_second_phase_resumes_without_redoing_finished_phases(
    tmp_path: Path, system_env: dict[str, str]
) -> None:
    env = {**system_env, "AGENTBUS_OFFLINE_DELAY": "0.02", "AGENTBUS_ACK_WAIT": "2"}
    system = System(tmp_path / "data", env).start()
    session_id = await system.create_session()
    # A lead and one member: design, then implementation on it, then verification (3 phases, one at a time).
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": "@team:product_lead,engineer Build a URL shortener"}))
        frames = await receive_until(ws, "team_formed", timeout=60)
        plan = frames[-1]["data"]["plan_phases"]
        while True:
            frame = (await receive_until(ws, "expert_result_chunk", timeout=60))[-1]
            if frame["data"]["phase_id"] == plan[1]["id"]:
                break  # the second phase is streaming: its result is not recorded yet
    assert system.stop(signal.SIGKILL) == -signal.SIGKILL

    system.start()
    try:
        async with asyncio.timeout(90):
            while (
                not (messages := await system.messages(session_id))
                or messages[-1]["agent_name"] != "team_collab"
                or messages[-1]["metadata"]  # a team card, not yet the final answer
            ):
                await asyncio.sleep(0.2)
        await asyncio.sleep(3)  # longer than the ack wait: a second team or answer would show up now
        async with system.http() as client:
            log = [e["event"] for e in (await client.get(f"/sessions/{session_id}/events")).json()]
        types = Counter(e["type"] for e in log)
        for once in ("user_message", "team_formed", "plan_update", "team_synthesis", "team_dissolved"):
            assert types[once] == 1, once
        assert types["assistant_message"] == 1
        assert [e["plan_phases"] for e in log if e["type"] == "plan_update"] == [plan]  # the plan is the same
        completed = Counter(e["phase_id"] for e in log if e["type"] == "phase_completed")
        assert completed == Counter(p["id"] for p in plan)  # every phase completed exactly once
        started = Counter(e["phase_id"] for e in log if e["type"] == "phase_started")
        assert started == Counter(p["id"] for p in plan)  # the interrupted one resumed, not restarted
        results = Counter((e["phase_id"], e["attempt"]) for e in log if e["type"] == "expert_result")
        assert results == Counter((p["id"], 1) for p in plan)  # the first phase was not run again
        assert next(e for e in log if e["type"] == "team_dissolved")["status"] == "completed"
    finally:
        assert system.stop() == 0
