"""A real model end to end: `agentbus up` with every agent and expert on SmolLM2-135M (llama.cpp's server).

The model is tiny, so these tests check what must hold whatever it says: tokens
stream, usage is recorded, a board of three finishes within its limits, and the
moderator's conclusion is parsed or repaired into one.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import websockets

from actors.config import DEFAULT_CONFIG
from cli.local_llm import MODEL_ALIAS, LocalLLM
from tests.system import System, receive_until

LIMITS = """
[limits.chat]
max_tokens = 80
timeout = 60

[limits.speech]
max_tokens = 60
timeout = 60

[limits.summary]
max_tokens = 60
timeout = 60

[limits.conclusion]
max_tokens = 160
timeout = 90
"""


def real_model_system(tmp_path: Path, system_env: dict[str, str], base_url: str, *, extra: str = "") -> System:
    config = tmp_path / "agentbus.toml"
    offline = '[llm.default]\nkind = "offline"\nmodel = "offline"'
    local = f'[llm.default]\nkind = "openai"\nbase_url = "{base_url}"\nmodel = "{MODEL_ALIAS}"\ntimeout = 120'
    text = DEFAULT_CONFIG.read_text()
    assert offline in text, "the packaged config's default endpoint moved"
    config.write_text(text.replace(offline, local) + LIMITS + extra)
    return System(tmp_path / "data", {**system_env, "AGENTBUS_CONFIG": str(config)}).start()


async def test_a_chat_turn_streams_the_real_models_tokens_and_records_its_usage(
    tmp_path: Path, system_env: dict[str, str], local_llm_url: str
) -> None:
    system = real_model_system(tmp_path, system_env, local_llm_url)
    try:
        session_id = await system.create_session()
        async with websockets.connect(system.ws_base + session_id) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "message", "content": "What is the capital of France?"}))
            frames = await receive_until(ws, "final_answer", timeout=120)
        async with system.http() as client:
            events = [e["event"] for e in (await client.get(f"/sessions/{session_id}/events")).json()]
            # Projected asynchronously: the session's view and /metrics show the usage once the projector has it.
            async with asyncio.timeout(10):
                while not (usage := (await client.get(f"/sessions/{session_id}")).json()["usage"])["calls"]:
                    await asyncio.sleep(0.1)
            metrics = (await client.get(system.http_url + "/metrics")).text
    finally:
        assert system.stop() == 0
    tokens = [f for f in frames if f["type"] == "token"]
    assert len(tokens) > 1 and "".join(f["content"] for f in tokens).strip() == frames[-1]["content"].strip()
    [called] = [e for e in events if e["type"] == "model_called"]
    [completed] = [e for e in events if e["type"] == "turn_completed"]
    assert 0 < called["completion_tokens"] <= 80 and called["prompt_tokens"] > 0
    assert completed["completion_tokens"] == called["completion_tokens"] and completed["tier"] == "main"
    assert usage["completion_tokens"] == called["completion_tokens"] and usage["calls"] == 1
    assert f"agentbus_model_completion_tokens_total {called['completion_tokens']}" in metrics.splitlines()


async def test_a_board_of_three_on_the_real_model_finishes_within_its_limits_with_a_conclusion(
    tmp_path: Path, system_env: dict[str, str], local_llm_url: str
) -> None:
    system = real_model_system(tmp_path, system_env, local_llm_url)
    try:
        session_id = await system.create_session()
        started = time.monotonic()
        async with websockets.connect(system.ws_base + session_id) as ws:
            await ws.recv()
            topic = "@board:pragmatist,skeptic rounds=2 Should a small team adopt microservices?"
            await ws.send(json.dumps({"type": "message", "content": topic}))
            frames = await receive_until(ws, "final_answer", timeout=600)
        took = time.monotonic() - started
        board_id = next(f["data"]["board_id"] for f in frames if f["type"] == "board_started")
        async with system.http() as client:
            view = (await client.get(f"/boards/{board_id}")).json()
    finally:
        assert system.stop() == 0
    speeches = [f["data"] for f in frames if f["type"] == "expert_speech"]
    summaries = [f["data"] for f in frames if f["type"] == "round_summary"]
    [concluded] = [f["data"] for f in frames if f["type"] == "board_concluded"]
    assert len(speeches) + len(summaries) >= 3 and summaries  # at least one round, maybe ended early by consensus
    assert all(0 < s["completion_tokens"] <= 60 for s in speeches + summaries)
    assert concluded["summary"].strip() and concluded["completion_tokens"] <= 160  # parsed, repaired or fallen back
    usage = view["usage"]
    print(
        f"\nreal board: {took:.1f} s wall, {usage['calls']} calls, {usage['completion_tokens']} tokens generated, "
        f"{usage['completion_tokens'] / took:.1f} tokens/s overall, {usage['truncated']} cut at their limit"
    )


async def test_a_tool_call_with_the_real_model_runs_the_calculator_and_answers_from_its_result(
    tmp_path: Path, system_env: dict[str, str], local_llm_url: str
) -> None:
    """The tiny model would not choose a tool itself: the agent names it (`tool_choice`) for its first call."""
    agent = '\n[agents.counter]\ntools = ["calculator"]\ntool_choice = "calculator"\nmax_steps = 3\n'
    system = real_model_system(tmp_path, system_env, local_llm_url, extra=agent)
    try:
        async with system.http() as client:
            created = await client.post("/sessions", json={"agent_name": "counter"})
        session_id = created.json()["session_id"]
        async with websockets.connect(system.ws_base + session_id) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "message", "content": "Compute 17*23 with the calculator."}))
            frames = await receive_until(ws, "final_answer", timeout=180)
    finally:
        assert system.stop() == 0
    steps = [f["data"] for f in frames if f["type"] == "step"]
    [called, *_] = [s["data"] for s in steps if s["event_type"] == "tool_call"]
    [result, *_] = [s["data"] for s in steps if s["event_type"] == "tool_result"]
    assert called["tool"] == "calculator" and isinstance(json.loads(called["arguments"])["expression"], str)
    assert result["call_id"] == called["call_id"] and result["content"]
    assert frames[-1]["content"].strip()


async def test_the_real_server_killed_mid_answer_falls_through_and_the_client_discards_the_partial_text(
    tmp_path: Path, system_env: dict[str, str], local_llm_url: str
) -> None:
    own = LocalLLM(log_path=tmp_path / "own-llm.log")  # built already by `local_llm_url`: ours to kill
    base_url = own.start()
    fallback = '\n[llm.offline]\nkind = "offline"\n\n[agents.resilient]\nfallback = ["offline"]\n'
    system = real_model_system(tmp_path, system_env, base_url, extra=fallback)
    try:
        async with system.http() as client:
            session_id = (await client.post("/sessions", json={"agent_name": "resilient"})).json()["session_id"]
        async with websockets.connect(system.ws_base + session_id) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "message", "content": "Tell me a long story about a lighthouse."}))
            first = await receive_until(ws, "token", timeout=120)
            own.kill()
            frames = first + await receive_until(ws, "final_answer", timeout=60)
    finally:
        assert system.stop() == 0
        own.stop()
    live = [f for f in frames if f["type"] in ("token", "token_reset")]
    [reset] = [f for f in live if f["type"] == "token_reset"]
    cut = reset["data"]["segment"]
    assert all(f["data"]["segment"] == cut for f in live[: live.index(reset)])  # the real model's partial answer
    after = live[live.index(reset) + 1 :]
    assert after and all(f["data"]["segment"] != cut for f in after)
    assert "".join(f["content"] for f in after) == frames[-1]["content"]
    assert "offline assistant" in frames[-1]["content"]  # the recovery tier answered, alone
