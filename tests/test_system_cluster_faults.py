"""The whole fault drill: 3 workers on a 3-node NATS cluster, 60 sessions in flight, then a worker killed,
a NATS node killed (and back), and PostgreSQL restarted. Everything accepted finishes exactly once.

Clients behave as a deployment's do: each message is POSTed with an idempotency key and retried with the
same key while the system recovers, so a retry is answered, never recorded twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

from actors.config import DEFAULT_CONFIG
from bus import Bus
from schemas import Subjects
from tests.nats_cluster import NatsCluster
from tests.system import System, publications, published_once
from tests.test_system_workers import shares, until_spread, worker_pids

CHATS, TURNS, BOARDS, TEAMS = 36, 4, 14, 10


async def send(system: System, session_id: str, content: str, *, deadline: float = 150.0) -> dict:
    """POST one message, retrying with the same key until it is answered; return the answer."""
    key = uuid.uuid4().hex
    give_up = time.monotonic() + deadline
    async with httpx.AsyncClient(base_url=system.http_url + "/api/v1/chat", timeout=120) as client:
        while True:
            try:
                response = await client.post(
                    f"/sessions/{session_id}/messages", json={"content": content, "idempotency_key": key}
                )
                if response.status_code == 200:
                    return response.json()
            except httpx.HTTPError:
                pass  # the gateway's connection to NATS or PostgreSQL is recovering
            assert time.monotonic() < give_up, f"{content!r} on {session_id} was never answered"
            await asyncio.sleep(0.5)  # a client's back-off before it retries with the same key


async def create(system: System) -> str:
    while True:
        try:
            return await system.create_session()
        except httpx.HTTPError:
            await asyncio.sleep(0.5)


async def chats(system: System, session_id: str) -> None:
    for n in range(TURNS):
        await send(system, session_id, f"turn {n}")


async def events_of(system: System, session_id: str) -> list[dict]:
    async with system.http() as client:
        response = await client.get(f"/sessions/{session_id}/events", params={"after": 0, "limit": 1000})
        response.raise_for_status()
        return response.json()


async def recovered_after(system: System, started: float) -> float:
    """Seconds from `started` until a new session's chat turn is answered."""
    await send(system, await create(system), "are you there?")
    return time.monotonic() - started


def postmaster_pid(system: System) -> int:
    return int((system.data_dir / "pg" / "postmaster.pid").read_text().split("\n", 1)[0])


async def test_three_workers_on_a_three_node_cluster_survive_a_worker_a_nats_node_and_a_postgres_restart(
    tmp_path: Path,
) -> None:
    config = tmp_path / "agentbus.toml"
    config.write_text(DEFAULT_CONFIG.read_text().replace("replicas = 1 ", "replicas = 3 "))
    cluster = NatsCluster(tmp_path / "nats")
    cluster.start()
    env = {
        "AGENTBUS_NATS_URL": ",".join(cluster.urls),
        "AGENTBUS_CONFIG": str(config),
        "AGENTBUS_OFFLINE_DELAY": "0.005",
        "AGENTBUS_ACK_WAIT": "5",
    }
    system = System(tmp_path / "up", env).start(args=("--workers", "3"))
    recovery: dict[str, float] = {}
    in_flight: dict[str, int] = {}
    """Sessions whose work was still running when each fault came."""
    try:
        assert len(await until_spread(system, 3)) == 3
        assert await _command_stream_replicas(cluster) == 3
        sessions = {kind: [await create(system) for _ in range(n)] for kind, n in
                    (("chat", CHATS), ("board", BOARDS), ("team", TEAMS))}  # fmt: skip
        work = [asyncio.create_task(chats(system, sid)) for sid in sessions["chat"]]
        work += [asyncio.create_task(send(system, sid, "@board rounds=2 Should we ship on Fridays?"))
                 for sid in sessions["board"]]  # fmt: skip
        work += [asyncio.create_task(send(system, sid, "@team:architect,engineer Build a tiny URL shortener"))
                 for sid in sessions["team"]]  # fmt: skip

        # 1. kill -9 a worker while the work is in flight: the others own its partitions.
        await _until_done(work, 10)
        victim = worker_pids(system)[0]
        offset = system.log_path.stat().st_size
        started = time.monotonic()
        in_flight["worker kill -9"] = sum(not task.done() for task in work)
        os.kill(victim, signal.SIGKILL)
        await _until_covered(system, offset, victim)
        recovery["worker kill -9 → partitions owned again"] = time.monotonic() - started

        # 2. kill -9 the NATS node most connections use, then bring it back.
        await _until_done(work, 20)
        node = cluster.busiest()
        started = time.monotonic()
        in_flight["NATS node kill -9"] = sum(not task.done() for task in work)
        cluster.kill(node)
        recovery["NATS node kill -9 → a new turn answered"] = await recovered_after(system, started)
        cluster.restart(node)
        await _until_done(work, 30)

        # 3. restart PostgreSQL (a fast shutdown; `up` starts it again).
        started = time.monotonic()
        in_flight["PostgreSQL restart"] = sum(not task.done() for task in work)
        os.kill(postmaster_pid(system), signal.SIGINT)
        recovery["PostgreSQL restart → a new turn answered"] = await recovered_after(system, started)

        async with asyncio.timeout(170):
            await asyncio.gather(*work)

        for kind, ids in sessions.items():
            for session_id in ids:
                facts = [e["event"] for e in await events_of(system, session_id)]
                users = [fact for fact in facts if fact["type"] == "user_message"]
                answers = [fact["reply_to"] for fact in facts if fact["type"] == "assistant_message"]
                assert len(users) == (TURNS if kind == "chat" else 1), (kind, session_id, facts)
                assert answers == [user["message_id"] for user in users], (kind, session_id, facts)
                said = Counter(
                    (fact["type"], fact.get("round"), fact.get("expert_name"), fact.get("phase_id"))
                    for fact in facts
                    if fact["type"] in ("expert_speech", "phase_completed")
                )
                assert all(n == 1 for n in said.values()), (kind, session_id, said)

        # Steady state again: each event of new turns is published live exactly once.
        assert await _published_once(system, cluster) == {}
    finally:
        print("\nrecovery (s):", json.dumps({k: round(v, 2) for k, v in recovery.items()}, ensure_ascii=False))
        print("sessions in flight at each fault:", json.dumps(in_flight))
        assert system.stop() == 0
        cluster.stop()


async def _until_done(work: list[asyncio.Task[None] | asyncio.Task[dict]], count: int) -> None:
    """Wait until `count` of the sessions' work finished (the faults come while the rest is in flight)."""
    pending = [task for task in work if not task.done()]
    while len(work) - len(pending) < count and pending:
        done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
        pending = [task for task in work if not task.done()]


async def _until_covered(system: System, after: int, victim: int, timeout: float = 30.0) -> None:
    """Wait until the live workers' latest shares (past byte `after`) cover all 8 partitions once."""
    victim_members = {
        json.loads(line)["member"]
        for line in system.log_path.read_text().splitlines()
        if '"partitions_owned"' in line and json.loads(line).get("pid") == victim
    }
    async with asyncio.timeout(timeout):
        while True:
            owned = [p for member, ps in shares(system, after).items() if member not in victim_members for p in ps]
            if sorted(owned) == list(range(8)):
                return
            await asyncio.sleep(0.1)


async def _published_once(system: System, cluster: NatsCluster) -> dict[int, int]:
    """Publish counts other than one, per position, of the events of a few new chat turns."""
    async with publications(",".join(cluster.urls), "agentbus") as published:
        probes = [await create(system) for _ in range(5)]
        for session_id in probes:
            await send(system, session_id, "once")
        positions = {e["position"] for sid in probes for e in await events_of(system, sid)}
        return await published_once(published, positions)


async def _command_stream_replicas(cluster: NatsCluster) -> int:
    bus = await Bus.connect(",".join(cluster.urls), name="stream-reader", subjects=Subjects("agentbus"))
    try:
        info = await bus.nc.jetstream().stream_info(bus.subjects.cmd_stream)
        assert info.cluster is not None and len(info.cluster.replicas or []) == 2  # a leader and two followers
        return info.config.num_replicas or 1
    finally:
        await bus.close()
