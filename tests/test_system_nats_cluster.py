"""`agentbus up` on a 3-node NATS cluster (tests/nats_cluster.py) named by `AGENTBUS_NATS_URL=<all three>`.

The command stream gets the configured 3 replicas, and chat goes on while the
node the worker is connected to is killed with SIGKILL and after it comes back.
A client resends a message refused while the cluster recovers with the same
idempotency key, as a deployment's clients do; each message is answered once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats.errors
import pytest
import websockets
from nats.js.api import StreamInfo

from actors.config import DEFAULT_CONFIG
from bus import Bus
from schemas import Subjects
from tests.nats_cluster import NatsCluster
from tests.system import System

RETRIED = {"service_unavailable", "bus_unavailable"}
"""The refusals a client answers by sending the same message again (same key) after a back-off."""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """A fresh 3-node cluster, stopped after the test."""
    cluster = NatsCluster(tmp_path / "nats")
    started = time.monotonic()
    cluster.start()
    print(f"\ncluster: 3 nodes healthy {time.monotonic() - started:.1f} s after start")
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_env(tmp_path: Path, cluster: NatsCluster, fresh_database_url: str) -> dict[str, str]:
    """The environment of an `agentbus up` on the cluster, with `[cluster] replicas = 3` in its config."""
    config = tmp_path / "agentbus.toml"
    text, replaced = re.subn(r"^replicas = 1\b", "replicas = 3", DEFAULT_CONFIG.read_text(), flags=re.MULTILINE)
    assert replaced == 1, "actors/default_config.toml has no `replicas = 1` line under [cluster]"
    config.write_text(text)
    return {
        "AGENTBUS_NATS_URL": ",".join(cluster.urls),
        "AGENTBUS_DATABASE_URL": fresh_database_url,
        "AGENTBUS_SUBJECT_PREFIX": "t" + uuid.uuid4().hex[:10],
        "AGENTBUS_CONFIG": str(config),
        "AGENTBUS_ACK_WAIT": "3",  # a command whose ack the lost node took is redelivered soon
    }


@pytest.fixture
def system(tmp_path: Path, cluster_env: dict[str, str]) -> Iterator[System]:
    system = System(tmp_path / "data", cluster_env).start()
    yield system
    if system.process is not None:
        assert system.stop() == 0


@pytest.fixture
async def cluster_bus(cluster: NatsCluster, cluster_env: dict[str, str]) -> AsyncIterator[Bus]:
    """The test's own connection to the cluster, under the system's prefix."""
    prefix = cluster_env["AGENTBUS_SUBJECT_PREFIX"]
    bus = await Bus.connect(cluster_env["AGENTBUS_NATS_URL"], name="test-observer", subjects=Subjects(prefix))
    yield bus
    await bus.close()


async def command_stream(bus: Bus) -> StreamInfo:
    return await bus.nc.jetstream(timeout=2).stream_info(bus.subjects.cmd_stream)


async def until_replicas_current(bus: Bus, timeout: float = 30.0) -> StreamInfo:
    """Wait until the command stream has a leader and two followers, both current; return its info."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                info = await command_stream(bus)
            except (TimeoutError, nats.errors.Error):  # no stream leader for a moment: ask again
                info = None
            followers = [] if info is None or info.cluster is None else info.cluster.replicas or []
            if info is not None and info.cluster and info.cluster.leader and len(followers) == 2:
                if all(peer.current and not peer.offline for peer in followers):
                    return info
            await asyncio.sleep(0.2)


async def move_leader(bus: Bus, node: str, timeout: float = 30.0) -> None:
    """Make `node` the command stream's leader (a step-down with it preferred), so that its loss needs an election."""
    async with asyncio.timeout(timeout):
        while (info := await until_replicas_current(bus)).cluster and info.cluster.leader != node:
            request = json.dumps({"placement": {"preferred": node}}).encode()
            with contextlib.suppress(TimeoutError, nats.errors.Error):
                await bus.nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{bus.subjects.cmd_stream}", request, timeout=5)


async def say(system: System, session_id: str, content: str, *, timeout: float = 60.0) -> tuple[str, int]:
    """Send `content` over a socket with one idempotency key until it is answered; return the answer and the sends.

    A refusal while NATS recovers (`RETRIED`) or a closed socket makes the client
    send it again, with the same key, after a back-off; a socket opened after
    the answer was given finds it in the session's messages instead.
    """
    key = uuid.uuid4().hex
    sends = 0
    async with asyncio.timeout(timeout):
        while True:
            try:
                async with websockets.connect(system.ws_base + session_id) as ws:
                    await ws.recv()  # the seed frame
                    while True:
                        if sends and (answer := await _answer_in_log(system, session_id, content)):
                            return answer, sends
                        await ws.send(json.dumps({"type": "message", "content": content, "idempotency_key": key}))
                        sends += 1
                        while (frame := json.loads(await ws.recv()))["type"] not in ("final_answer", "error"):
                            pass
                        if frame["type"] == "final_answer":
                            return frame["content"], sends
                        assert frame["data"]["code"] in RETRIED, frame
                        await asyncio.sleep(0.5)
            except (websockets.ConnectionClosed, OSError):
                await asyncio.sleep(0.5)  # the gateway closed the socket (NATS unavailable): open another


async def _answer_in_log(system: System, session_id: str, content: str) -> str | None:
    """The answer to the user message `content` of the session, if it has one."""
    messages = await system.messages(session_id)
    for mine, answer in itertools.pairwise(messages):
        if mine["role"] == "user" and mine["content"] == content and answer["role"] == "assistant":
            return str(answer["content"])
    return None


async def test_the_command_stream_agentbus_creates_on_the_cluster_has_three_replicas_on_three_nodes(
    system: System, cluster_bus: Bus
) -> None:
    info = await until_replicas_current(cluster_bus)
    assert info.config.num_replicas == 3
    assert info.cluster is not None and info.cluster.leader is not None
    peers = {info.cluster.leader, *(peer.name for peer in info.cluster.replicas or [])}
    assert peers == {"n0", "n1", "n2"}  # one copy on each node


async def test_chat_goes_on_while_the_workers_node_is_killed_and_after_it_comes_back_with_one_answer_each(
    system: System, cluster: NatsCluster, cluster_bus: Bus
) -> None:
    sessions = [await system.create_session() for _ in range(3)]
    for session_id in sessions:
        assert 'You said: "before"' in (await say(system, session_id, "before"))[0]
    worker, gateway = cluster.node_of("agentbus-worker"), cluster.node_of("agentbus-gateway")
    assert worker is not None and gateway is not None
    await move_leader(cluster_bus, f"n{worker}")
    print(f"worker on n{worker} (the command stream's leader), gateway on n{gateway}; killing n{worker}")

    cluster.kill(worker)  # the worker's connection, the stream's leader and, if they share it, the gateway's
    killed = time.monotonic()
    sends = []
    for n, session_id in enumerate(sessions):
        answer, count = await say(system, session_id, f"during {n}")
        sends.append(count)
        assert f'You said: "during {n}"' in answer
        if n == 0:
            print(f"first answer during the outage {time.monotonic() - killed:.1f} s after the kill")
    assert cluster.node_of("agentbus-worker") not in (None, worker)
    print(f"sends per message during the outage: {sends}; all answered {time.monotonic() - killed:.1f} s after it")

    restarted = time.monotonic()
    cluster.restart(worker)
    await until_replicas_current(cluster_bus)
    print(f"n{worker} back and the command stream's replicas current {time.monotonic() - restarted:.1f} s after")
    for n, session_id in enumerate(sessions):
        assert f'You said: "after {n}"' in (await say(system, session_id, f"after {n}"))[0]

    for n, session_id in enumerate(sessions):
        messages = await system.messages(session_id)
        assert [m["role"] for m in messages] == ["user", "assistant"] * 3, messages
        assert [m["content"] for m in messages[::2]] == ["before", f"during {n}", f"after {n}"]
        for question, reply in zip(messages[::2], messages[1::2], strict=True):
            assert reply["content"].startswith(f'You said: "{question["content"]}"'), reply
