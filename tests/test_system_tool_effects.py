"""Tool effects exactly once, through a real crash: `agentbus up` is killed with SIGKILL while an MCP tool
runs (its effect already done, counted in a file outside the worker), then restarted on the same log."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import websockets

from tests.mcp_tool_processes import SERVER, starts
from tests.system import System, process_alive, receive_until
from tests.test_system_mcp_tools import CallerModel


@pytest.fixture
async def model() -> AsyncIterator[CallerModel]:
    async with CallerModel() as running:
        yield running


@pytest.fixture
def env(tmp_path: Path, system_env: dict[str, str], model: CallerModel) -> dict[str, str]:
    """An `agentbus up` whose agent has the test MCP server `fx`, and whose model calls the tool a message names."""
    config = tmp_path / "agents.toml"
    config.write_text(
        f"""
[llm.default]
kind = "openai"
base_url = "{model.base_url}"
model = "caller"

[mcp.fx]
command = {json.dumps(sys.executable)}
args = [{json.dumps(str(SERVER))}, "stdio"]
env = {{ MCP_TEST_EFFECTS = {json.dumps(str(tmp_path / "effects"))}, MCP_TEST_STARTS = {json.dumps(str(tmp_path / "starts"))} }}
timeout = 30

[agents.assistant]
tools = []
mcp = ["fx"]
"""
    )
    # A short ack wait: the command of the cut turn comes back soon after the restart.
    return {**system_env, "AGENTBUS_CONFIG": str(config), "AGENTBUS_ACK_WAIT": "2"}


@pytest.fixture
def system(tmp_path: Path, env: dict[str, str]) -> Iterator[System]:
    system = System(tmp_path / "data", env)
    yield system
    if system.process is not None:
        assert system.stop() == 0
    for pid in starts(tmp_path / "starts"):
        if process_alive(pid):  # a server whose worker was killed under it
            os.kill(pid, signal.SIGKILL)


def effects(tmp_path: Path) -> list[list[str]]:
    """The runs of the `mark` tools so far: label, effect key, attempt."""
    path = tmp_path / "effects"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def runs(tmp_path: Path) -> Counter[str]:
    return Counter(label for label, _, _ in effects(tmp_path))


async def until_marked(tmp_path: Path, labels: set[str], timeout: float = 30.0) -> None:
    """Wait until the tool has had its effect for each of `labels` (it then blocks until the kill)."""
    async with asyncio.timeout(timeout):
        while not labels <= set(runs(tmp_path)):
            await asyncio.sleep(0.05)


async def start_blocking_call(system: System, tool: str, label: str) -> tuple[str, int]:
    """Start a session whose model calls `tool`, whose first run blocks; return the session and the position
    of its `tool_started`."""
    session_id = await system.create_session()
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        arguments = json.dumps({"label": label, "block_first": True})
        await ws.send(json.dumps({"type": "message", "content": f"call {tool} {arguments}"}))
        started = (await receive_until(ws, "tool_started"))[-1]
    assert started["data"]["effect_key"].endswith(f":call_{tool}")
    return session_id, started["position"]


async def event_types(system: System, session_id: str) -> Counter[str]:
    async with system.http() as client:
        log = (await client.get(f"/sessions/{session_id}/events", params={"after": 0, "limit": 1000})).json()
    return Counter(e["event"]["type"] for e in log)


def kill_and_restart(system: System, tmp_path: Path) -> None:
    assert system.stop(signal.SIGKILL) == -signal.SIGKILL
    for pid in starts(tmp_path / "starts"):
        if process_alive(pid):  # its worker is gone: nothing may answer the cut call any more
            os.kill(pid, signal.SIGKILL)
    system.start()


async def test_an_idempotent_tool_cut_by_kill_9_runs_again_after_restart_and_its_result_is_recorded_once(
    system: System, tmp_path: Path
) -> None:
    """Executions: 2 (the cut one, the one after the restart); one `tool_result`, no question to the user."""
    system.start()
    session_id, position = await start_blocking_call(system, "fx__mark_idempotent", "idem")
    await until_marked(tmp_path, {"idem"})
    kill_and_restart(system, tmp_path)

    async with websockets.connect(system.ws_base + session_id + f"?after={position}") as ws:
        await ws.recv()
        frames = await receive_until(ws, "final_answer", timeout=60)
    assert frames[-1]["content"] == "The tool said: marked idem (run 2)"
    assert not [f for f in frames if f["type"] == "confirmation_request"]
    assert runs(tmp_path)["idem"] == 2
    [first, second] = effects(tmp_path)
    assert first[1] == second[1] and (first[2], second[2]) == ("1", "2")  # one effect key, two attempts
    types = await event_types(system, session_id)
    assert (types["tool_started"], types["tool_result"], types["tool_outcome_unknown"]) == (2, 1, 0)
    assert types["turn_completed"] == 1


async def test_a_tool_that_is_not_idempotent_cut_by_kill_9_runs_again_only_if_the_user_says_so(
    system: System, tmp_path: Path
) -> None:
    """Executions: 1 until the user answers the confirmation frame; 2 after "run it again", 1 after "go on
    without it"; both turns finish, and the model reads that the outcome was unknown."""
    system.start()
    cut = {label: await start_blocking_call(system, "fx__mark", label) for label in ("again", "skip")}
    await until_marked(tmp_path, {"again", "skip"})
    kill_and_restart(system, tmp_path)

    answers = {}
    for label, (session_id, position) in cut.items():
        async with websockets.connect(system.ws_base + session_id + f"?after={position}") as ws:
            await ws.recv()
            frames = await receive_until(ws, "confirmation_request", timeout=60)
            unknown = [f for f in frames if f["type"] == "tool_outcome_unknown"]
            assert unknown and unknown[0]["data"]["tool"] == "fx__mark"
            request = frames[-1]["data"]
            assert "may or may not have had its effect" in request["reason"]
            assert runs(tmp_path)[label] == 1  # not run again silently
            reply = {
                "type": "confirmation_reply",
                "confirmation_id": request["confirmation_id"],
                "approved": label == "again",
            }
            await ws.send(json.dumps(reply))
            answers[label] = (await receive_until(ws, "final_answer", timeout=30))[-1]["content"]

    assert runs(tmp_path) == Counter({"again": 2, "skip": 1})
    assert answers["again"].startswith("The tool said: (An earlier run of fx__mark was cut")
    assert answers["again"].endswith("the user chose to run it again.) marked again (run 2)")
    assert "It was not run again (the user chose to go on without it)" in answers["skip"]
    for label, (session_id, _) in cut.items():
        types = await event_types(system, session_id)
        assert types["tool_started"] == (2 if label == "again" else 1)
        assert (types["tool_outcome_unknown"], types["tool_result"], types["turn_completed"]) == (1, 1, 1)


def parent_of(pid: int) -> int:
    return int((Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[1])


async def test_a_worker_killed_while_a_tool_runs_is_covered_by_another_that_asks_on_the_open_socket(
    system: System, tmp_path: Path
) -> None:
    """`--workers 2`, and only the worker running the tool (the parent of its MCP server) is killed: the
    worker that takes the session over asks the user on the socket that stayed open. Executions: 1, then 2
    once the user says run it again."""
    system.start(args=("--workers", "2"))
    session_id = await system.create_session()
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        arguments = json.dumps({"label": "w", "block_first": True})
        await ws.send(json.dumps({"type": "message", "content": f"call fx__mark {arguments}"}))
        await receive_until(ws, "tool_started")
        await until_marked(tmp_path, {"w"})
        [server] = starts(tmp_path / "starts")
        worker = parent_of(server)
        assert system.process is not None and worker != system.process.pid  # a worker, not the gateway's process
        os.kill(worker, signal.SIGKILL)

        frames = await receive_until(ws, "confirmation_request", timeout=60)
        assert [f["data"]["attempt"] for f in frames if f["type"] == "tool_outcome_unknown"] == [1]
        assert runs(tmp_path)["w"] == 1
        reply = {
            "type": "confirmation_reply",
            "confirmation_id": frames[-1]["data"]["confirmation_id"],
            "approved": True,
        }
        await ws.send(json.dumps(reply))
        answer = (await receive_until(ws, "final_answer", timeout=30))[-1]["content"]
    assert answer.endswith("the user chose to run it again.) marked w (run 2)")
    assert runs(tmp_path)["w"] == 2
