"""A board whose experts never stop talking still ends: every speech cut at its limit, the meeting concluded."""

from __future__ import annotations

import json
import re
from pathlib import Path

import websockets

from actors.config import DEFAULT_CONFIG
from tests.openai_server import OpenAIServer
from tests.system import System, receive_until


def endless_config(path: Path, base_url: str) -> Path:
    """The packaged configuration with every expert on a model that never stops, and tight speech limits."""
    text = re.sub(r"^(\[experts\.\w+\])$", r'\1\nllm = "endless"', DEFAULT_CONFIG.read_text(), flags=re.M)
    text += f'\n[llm.endless]\nkind = "openai"\nbase_url = "{base_url}"\nmodel = "endless"\n'
    text += "\n[limits.speech]\nmax_tokens = 30\ntimeout = 5\n\n[limits.summary]\nmax_tokens = 20\ntimeout = 5\n"
    text += "\n[limits.conclusion]\nmax_tokens = 40\ntimeout = 5\n"
    path.write_text(text)
    return path


async def test_a_board_of_experts_that_never_stop_talking_concludes_with_every_speech_truncated(
    tmp_path: Path, system_env: dict[str, str]
) -> None:
    async with OpenAIServer() as server:
        config = endless_config(tmp_path / "agentbus.toml", server.base_url)
        system = System(tmp_path / "data", {**system_env, "AGENTBUS_CONFIG": str(config)}).start()
        try:
            session_id = await system.create_session()
            async with websockets.connect(system.ws_base + session_id) as ws:
                await ws.recv()
                await ws.send(json.dumps({"type": "message", "content": "@board:pragmatist,skeptic rounds=1 Talk?"}))
                frames = await receive_until(ws, "final_answer", timeout=90)
            board_id = next(f["data"]["board_id"] for f in frames if f["type"] == "board_started")
            async with system.http() as client:
                view = (await client.get(f"/boards/{board_id}")).json()
        finally:
            assert system.stop() == 0
    speeches = [f["data"] for f in frames if f["type"] == "expert_speech"]
    assert [s["expert_name"] for s in speeches] == ["pragmatist", "skeptic"]
    assert all(s["truncated"] and s["completion_tokens"] == 30 for s in speeches)
    assert [f["type"] for f in frames].count("board_concluded") == 1
    # Two speeches, a summary and the conclusion: every call counted, every answer cut.
    usage = view["usage"]
    assert (usage["calls"], usage["completion_tokens"], usage["truncated"]) == (4, 30 + 30 + 20 + 40, 4)
    assert usage["prompt_tokens"] > 0  # estimated: a cut stream reports no usage
    # The moderator's endless "JSON" never parses: the conclusion falls back to the round's summary.
    assert all(body.get("max_tokens") in (20, 30, 40) for body in server.requests)


async def test_a_team_of_experts_that_never_stop_talking_still_plans_works_and_answers(
    tmp_path: Path, system_env: dict[str, str]
) -> None:
    """Every role's generation is cut at its limit: the unreadable plan falls back, each result is cut, the team ends."""
    async with OpenAIServer() as server:
        config = endless_config(tmp_path / "agentbus.toml", server.base_url)
        limits = "".join(
            f"\n[limits.{role}]\nmax_tokens = {tokens}\ntimeout = 5\n"
            for role, tokens in (("plan", 25), ("phase_result", 30), ("review", 15), ("synthesis", 35))
        )
        config.write_text(config.read_text() + limits)
        system = System(tmp_path / "data", {**system_env, "AGENTBUS_CONFIG": str(config)}).start()
        try:
            session_id = await system.create_session()
            async with websockets.connect(system.ws_base + session_id) as ws:
                await ws.recv()
                await ws.send(json.dumps({"type": "message", "content": "@team:product_lead,architect,qa Talk?"}))
                frames = await receive_until(ws, "final_answer", timeout=120)
        finally:
            assert system.stop() == 0

    def of(kind: str) -> list[dict]:
        return [f["data"] for f in frames if f["type"] == kind]

    formed = of("team_formed")[0]
    # "more more more …" is no plan: one phase per member.
    assert [(p["id"], p["assignee"]) for p in formed["plan_phases"]] == [("architect", "architect"), ("qa", "qa")]
    assert formed["truncated"] and formed["completion_tokens"] == 25
    results = of("expert_result")
    assert len(results) == 2 and all(r["truncated"] and r["completion_tokens"] == 30 for r in results)
    assert all(r["truncated"] and r["completion_tokens"] == 15 for r in of("review_result"))
    synthesis = of("team_synthesis")[0]
    assert synthesis["truncated"] and synthesis["completion_tokens"] == 35
    assert frames[-1]["content"] == synthesis["content"]
    assert {body.get("max_tokens") for body in server.requests} == {25, 30, 15, 35}
