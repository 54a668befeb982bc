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
from bus import Bus, publish_command
from schemas import SendMessage, Subjects, partition_of
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
    try:
        spread = await until_spread(system, 3)
        assert sorted(len(owned) for owned in spread.values()) == [2, 3, 3]
        assert len(worker_pids(system)) == 3
        sessions = [await system.create_session() for _ in range(6)]
        for session_id in sessions:
            assert 'You said: "hello"' in await chat(system, session_id, "hello")
    except BaseException:
        system.interrupt_group()  # the whole group: the workers too
        raise

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
        # The speech cut by the kill is reset before it streams again. The shares change twice (the
        # victim's leave, its restart's join); unless one of them moved the board's session (then the
        # board resumes on its new owner and asks anew), the board's worker asks again within seconds.
        assert "expert_speech_chunk_reset" in kinds
        if _kept(system, owner, session_id, killed_at):
            assert '"expert_asked_again"' in system.log_path.read_text()
        speeches = [(f["data"]["round"], f["data"]["expert_name"]) for f in frames if f["type"] == "expert_speech"]
        assert speeches and len(speeches) == len(set(speeches))
        assert kinds.count("final_answer") == 1
    finally:
        await reports.close()
        await bus.close()
        assert system.stop() == 0


async def test_the_partition_count_changes_while_workers_serve_and_no_command_is_stranded_or_reordered(
    tmp_path: Path, system_env: dict[str, str], nats_url: str, subject_prefix: str
) -> None:
    twelve = tmp_path / "twelve.toml"
    twelve.write_text(DEFAULT_CONFIG.read_text().replace("partitions = 8 ", "partitions = 12 "))
    system = System(tmp_path / "up", {**system_env, "AGENTBUS_OFFLINE_DELAY": "0.05"}).start(args=("--workers", "2"))
    bus = await Bus.connect(nats_url, name="service", subjects=Subjects(subject_prefix))
    joined: subprocess.Popen[bytes] | None = None
    try:
        await until_spread(system, 2)
        sessions = [await system.create_session() for _ in range(6)]

        async def send(text: str) -> list[int]:
            acks = [await publish_command(bus, sid, SendMessage(content=f"{text} {sid[:6]}")) for sid in sessions]
            return [ack.sequence for ack in acks]

        await send("one")  # a backlog on the 8 partitions while the change starts
        # A worker configured with 12 partitions joins the two running on 8: the stream switches to a
        # layout of 12 at once, and the old one drains before anyone takes from the new one.
        offset = system.log_path.stat().st_size
        joined = start_worker(system, {"AGENTBUS_CONFIG": str(twelve)})
        system.wait_for_output('"command_stream_repartitioning"', after=offset)
        later = await send("two") + await send("three")
        stored = [await bus.nc.jetstream().get_msg(bus.subjects.cmd_stream, seq) for seq in later]
        assert {msg.subject.split(".")[1] for msg in stored} == {"part1"}  # the new layout's subjects

        system.wait_for_output('"command_stream_repartitioned"', after=offset)
        assert sorted(await until_owned_all(system, 12, after=offset)) == list(range(12))
        for session_id in sessions:
            async with asyncio.timeout(60):
                while len(messages := await system.messages(session_id)) < 6:
                    await asyncio.sleep(0.2)
            tag = session_id[:6]
            # In the order sent, each answered (a message sent while a turn runs waits for it).
            said = [m["content"] for m in messages if m["role"] == "user"]
            answered = [m["content"].split('"')[1] for m in messages if m["role"] == "assistant"]
            assert said == answered == [f"one {tag}", f"two {tag}", f"three {tag}"]
        # Every command of the old layout was taken, and its consumers are gone.
        consumers = [info.name for info in await bus.nc.jetstream().consumers_info(bus.subjects.cmd_stream)]
        assert consumers and all(name.startswith("workers-g1-") for name in consumers)
    finally:
        await bus.close()
        if joined is not None:
            joined.send_signal(signal.SIGINT)
            assert joined.wait(30) == 0
        assert system.stop() == 0


def start_worker(system: System, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """An `agentbus worker` on the system's services, beside its own, writing into its log."""
    with open(system.log_path, "ab") as log:
        return subprocess.Popen([AGENTBUS, "worker"], env={**system.env, **env}, stdout=log, stderr=log)


async def until_owned_all(system: System, partitions: int, *, after: int, timeout: float = 30.0) -> list[int]:
    """Wait until the workers say (past byte `after`) they own `partitions` partitions in all; return them."""
    async with asyncio.timeout(timeout):
        while True:
            owned = [p for ps in shares(system, after).values() for p in ps]
            if len(owned) == partitions:
                return owned
            await asyncio.sleep(0.1)
