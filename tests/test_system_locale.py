"""Users' texts in the session's language: a session whose metadata says `locale: zh` reads Chinese, as the seed's did."""

from __future__ import annotations

import json
from pathlib import Path

import websockets

from tests.system import System, receive_until


async def chinese_session(system: System) -> str:
    async with system.http() as client:
        response = await client.post("/sessions", json={"agent_name": "assistant", "metadata": {"locale": "zh"}})
    assert response.status_code == 200, response.text
    return response.json()["session_id"]


async def test_a_chinese_session_gets_its_refusals_and_the_boards_answer_in_chinese(system: System) -> None:
    session_id = await chinese_session(system)
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": "@board"}))
        refused = (await receive_until(ws, "error"))[-1]["data"]
        await ws.send(json.dumps({"type": "message", "content": "@team"}))
        no_task = (await receive_until(ws, "error"))[-1]["data"]
        await ws.send(json.dumps({"type": "message", "content": "@board rounds=1 要不要迁移到微服务?"}))
        answer = (await receive_until(ws, "final_answer", timeout=60))[-1]["content"]
    assert refused["code"] == "board_needs_topic" and refused["message"].startswith(
        "私董会需要一个讨论主题,例如:@board"
    )
    assert no_task["code"] == "team_needs_task" and no_task["message"].startswith("团队任务需要一个描述,例如:@team")
    for heading in ("## 讨论总结", "## 决策建议", "## 共识点", "## 分歧点"):
        assert heading in answer
    assert answer.endswith("_共进行 1 轮讨论_")


async def test_an_english_session_stays_english(system: System, session_id: str) -> None:
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": "@board"}))
        refused = (await receive_until(ws, "error"))[-1]["data"]
    assert refused["message"].startswith("a board meeting needs a topic, for example: @board")


async def test_agentbus_locale_sets_the_language_of_sessions_that_name_none(
    tmp_path: Path, system_env: dict[str, str]
) -> None:
    system = System(tmp_path / "data", {**system_env, "AGENTBUS_LOCALE": "zh-CN"}).start()
    try:
        session_id = await system.create_session()
        async with websockets.connect(system.ws_base + session_id) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "message", "content": "@team"}))
            refused = (await receive_until(ws, "error"))[-1]["data"]
    finally:
        assert system.stop() == 0
    assert refused["message"].startswith("团队任务需要一个描述")


async def test_a_chinese_sessions_failed_team_is_told_in_chinese(system: System) -> None:
    session_id = await chinese_session(system)
    markers = "[fail:implementation] [fail:implementation-retry] [fail:implementation-retry-retry]"
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": f"@team 开发用户登录功能 {markers}"}))
        error = (await receive_until(ws, "error", timeout=90))[-1]["data"]
    assert error["code"] == "team_failed" and error["message"].startswith("团队协作执行失败:")
    async with system.http() as client:
        log = [e["event"] for e in (await client.get(f"/sessions/{session_id}/events")).json()]
    assert log[-1]["type"] == "message_failed" and log[-1]["reason"].startswith("团队协作执行失败:")
