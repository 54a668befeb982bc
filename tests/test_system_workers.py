"""`agentbus up --workers 3`: three worker processes share the partitions, survive one's death, stop with Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

import websockets

from actors.config import DEFAULT_CONFIG
from bus import Bus
from schemas import Subjects, partition_of
from schemas.experts import expert_working
from tests.system import AGENTBUS, System, live_processes_mentioning, receive_until


def shares(system: System, after: int) -> dict[int, list[int]]:
    """The partitions each worker (by member number) last said it owns, in the output past byte `after`."""
    latest: dict[int, list[int]] = {}
    for line in system.log_path.read_bytes()[after:].decode(errors="replace").splitlines():
        if '"partitions_owned"' in line:
            entry = json.loads(line)
            latest[entry["member"]] = entry["partitions"]
    return latest


async def until_spread(system: System, workers: int, *, after: int = 0, timeout: float = 30.0) -> dict[int, list[int]]:
    """Wait until `workers` workers each say (past byte `after`) they own a share of the 8 partitions, all 8 once."""
    async with asyncio.timeout(timeout):
        while True:
            owning = {member: owned for member, owned in shares(system, after).items() if owned}
            every = sorted(partition for owned in owning.values() for partition in owned)
            if len(owning) == workers and every == list(range(8)):
                return owning
            await asyncio.sleep(0.1)


def _owns(system: System, pid: int, session_id: str) -> bool:
    """Whether the worker process `pid` last said it owns the partition of `session_id`."""
    owned: list[int] = []
    for line in system.log_path.read_text().splitlines():
        if '"partitions_owned"' in line and json.loads(line).get("pid") == pid:
            owned = json.loads(line)["partitions"]
    return partition_of(session_id, 8) in owned


def _kept(system: System, pids: set[int], session_id: str, after: int) -> bool:
    """Whether every share `pids` announced past byte `after` still held the partition of `session_id`."""
    partition = partition_of(session_id, 8)
    for line in system.log_path.read_bytes()[after:].decode(errors="replace").splitlines():
        if '"partitions_owned"' in line and (entry := json.loads(line)).get("pid") in pids:
            if partition not in entry["partitions"]:
                return False
    return True


def worker_pids(system: System) -> list[int]:
    return [int(line.split(":")[0]) for line in live_processes_mentioning(system.data_dir) if " worker " in line]


async def chat(system: System, session_id: str, content: str) -> str:
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": content}))
        return (await receive_until(ws, "final_answer"))[-1]["content"]


async def test_three_workers_each_own_a_share_and_ctrl_c_stops_every_process(
    tmp_path: Path, system_env: dict[str, str]
) -> None:
    system = System(tmp_path / "up", system_env).start(own_group=True, args=("--workers", "3"))
    spread = await until_spread(system, 3)
    assert sorted(len(owned) for owned in spread.values()) == [2, 3, 3]
    assert len(worker_pids(system)) == 3
    sessions = [await system.create_session() for _ in range(6)]
    for session_id in sessions:
        assert 'You said: "hello"' in await chat(system, session_id, "hello")

    stopped = system.interrupt_group()
    assert stopped.code == 0, stopped.output
    assert "agentbus stopped" in stopped.output
    assert live_processes_mentioning(system.data_dir) == []


async def test_a_killed_worker_process_is_covered_by_the_others_and_restarted(
    tmp_path: Path, system_env: dict[str, str]
) -> None:
    system = System(tmp_path / "up", system_env).start(args=("--workers", "3"))
    try:
        await until_spread(system, 3)
        sessions = [await system.create_session() for _ in range(6)]
        for session_id in sessions:
            assert 'You said: "before"' in await chat(system, session_id, "before")

        victim = worker_pids(system)[0]
        offset = system.log_path.stat().st_size
        os.kill(victim, signal.SIGKILL)  # a crash: no stop, its leases go with its connections
        system.wait_for_output("restarting it", after=offset)
        await until_spread(system, 3, after=offset)  # the restarted one took its share back
        for session_id in sessions:
            assert 'You said: "after"' in await chat(system, session_id, "after")
            messages = await system.messages(session_id)
            assert [m["content"][:16] for m in messages] == ["before", 'You said: "befor', "after", 'You said: "after']
    finally:
        assert system.stop() == 0


async def test_a_board_whose_expert_dies_on_another_worker_asks_again_and_resets_the_speech(
    tmp_path: Path, system_env: dict[str, str], nats_url: str, subject_prefix: str
) -> None:
    system = System(tmp_path / "up", {**system_env, "AGENTBUS_OFFLINE_DELAY": "0.05"}).start(args=("--workers", "3"))
    bus = await Bus.connect(nats_url, name="observer", subjects=Subjects(subject_prefix))
    reports = await bus.subscribe(bus.subjects.all_actors("expert_call"), expert_working)
    try:
        await until_spread(system, 3)
        session_id = await system.create_session()
        async with websockets.connect(system.ws_base + session_id) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "message", "content": "@board rounds=2 Is a four-day week worth it?"}))
            frames = await receive_until(ws, "expert_speech_chunk")
            # The board runs on the worker owning the session; kill another one while it streams a speech
            # (8 speeches over 3 workers: some land elsewhere).
            owner = {pid for pid in worker_pids(system) if _owns(system, pid, session_id)}
            async with asyncio.timeout(60):
                async for report in reports:
                    pid = int(report.worker.rpartition(":")[2])
                    if report.answering == "Speak" and pid not in owner:
                        killed_at = system.log_path.stat().st_size
                        os.kill(pid, signal.SIGKILL)  # its first report: the speech has just begun
                        break
            frames += await receive_until(ws, "final_answer", timeout=90)
        kinds = [frame["type"] for frame in frames]
        # The shares change twice (the victim's leave, its restart's join); unless one of them moved the
        # board's session (then the board resumes on its new owner and asks anew), the board's worker asks
        # again within seconds and resets the speech cut by the kill before it streams again.
        if _kept(system, owner, session_id, killed_at):
            assert '"expert_asked_again"' in system.log_path.read_text()
            assert "expert_speech_chunk_reset" in kinds
        speeches = [(f["data"]["round"], f["data"]["expert_name"]) for f in frames if f["type"] == "expert_speech"]
        assert speeches and len(speeches) == len(set(speeches))
        assert kinds.count("final_answer") == 1
    finally:
        await reports.close()
        await bus.close()
        assert system.stop() == 0


async def test_the_partition_count_changes_only_on_a_drained_stream_and_a_worker_refuses_it_otherwise(
    tmp_path: Path, system_env: dict[str, str]
) -> None:
    twelve = tmp_path / "twelve.toml"
    twelve.write_text(DEFAULT_CONFIG.read_text().replace("partitions = 8 ", "partitions = 12 "))
    system = System(tmp_path / "up", system_env).start()
    session_id = await system.create_session()
    assert 'You said: "on eight"' in await chat(system, session_id, "on eight")

    # While a worker runs on 8 partitions, one configured with 12 stops and says why.
    refused = await asyncio.to_thread(
        subprocess.run,
        [AGENTBUS, "worker"],
        env={**system.env, "AGENTBUS_CONFIG": str(twelve)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "has 8 partitions and the configuration asks for 12" in refused.stderr
    assert "1 worker(s) are running" in refused.stderr

    # Drained (stopped cleanly, nothing in flight), the stream is remapped, and the session goes on.
    assert system.stop() == 0
    offset = system.log_path.stat().st_size
    system = System(tmp_path / "up", {**system_env, "AGENTBUS_CONFIG": str(twelve)}).start()
    try:
        assert sorted(await until_owned_all(system, 12, after=offset)) == list(range(12))
        assert 'You said: "on twelve"' in await chat(system, session_id, "on twelve")
        assert [m["content"][:18] for m in await system.messages(session_id)] == [
            "on eight", 'You said: "on eigh', "on twelve", 'You said: "on twel',
        ]  # fmt: skip
    finally:
        assert system.stop() == 0


async def until_owned_all(system: System, partitions: int, *, after: int, timeout: float = 30.0) -> list[int]:
    """Wait until the workers say (past byte `after`) they own `partitions` partitions in all; return them."""
    async with asyncio.timeout(timeout):
        while True:
            owned = [p for ps in shares(system, after).values() for p in ps]
            if len(owned) == partitions:
                return owned
            await asyncio.sleep(0.1)
