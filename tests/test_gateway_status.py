"""`/readyz` and `/metrics`: the command stream's backlog and the relay's lag.

Most tests build a gateway in-process on the real NATS and PostgreSQL with no
worker: with no relay running, every event appended is relay lag; with no
worker, every command published is pending on its consumer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from bus import Bus, ensure_command_stream, publish_command
from gateway import GatewayContext, create_app
from projections import Checkpoints, Engine, EventLog, NewEvent, ReadModels
from schemas import SendMessage, Subjects, partition_of
from schemas.events import UserMessage
from tests.system import System


@pytest.fixture
async def parts(nats_url: str, subject_prefix: str, engine: Engine) -> AsyncIterator[tuple[Bus, EventLog]]:
    bus = await Bus.connect(nats_url, name="status-test", subjects=Subjects(subject_prefix))
    await ensure_command_stream(bus)
    log = EventLog(engine)
    yield bus, log
    await log.close()
    await bus.close()


def client(ctx: GatewayContext) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://gateway")


async def append_messages(log: EventLog, count: int) -> int:
    events = [
        NewEvent(event=UserMessage(message_id=f"m{i}", content=str(i), idempotency_key=f"k{i}"), session_id="s1")
        for i in range(count)
    ]
    return (await log.append("session-s1", events, None))[-1].position


async def add_consumer(bus: Bus, partition: int) -> None:
    """A command consumer as a worker names it (`workers-p<n>`), which also names the relay's checkpoint."""
    config = ConsumerConfig(
        durable_name=f"workers-p{partition}",
        filter_subject=bus.subjects.partitioned_cmd(partition),
        ack_policy=AckPolicy.EXPLICIT,
    )
    await bus.nc.jetstream().add_consumer(bus.subjects.cmd_stream, config)


def values(text: str) -> dict[str, int]:
    return {line.split()[0]: int(line.split()[1]) for line in text.splitlines() if line and not line.startswith("#")}


async def test_readyz_fails_with_the_reason_while_one_relay_partition_lags_1001_events(
    parts: tuple[Bus, EventLog], engine: Engine
) -> None:
    """The lag is that of the slowest partition's checkpoint (`nats_relay.p<n>`): p0 caught up is not enough."""
    bus, log = parts
    for partition in (0, 1):
        await add_consumer(bus, partition)
    ctx = GatewayContext(bus=bus, event_log=log, read_models=ReadModels(engine), relay_lag_grace=0.0)
    head = await append_messages(log, 1001)
    checkpoints = Checkpoints(engine)
    async with client(ctx) as http:
        await checkpoints.set("nats_relay.p0", head)
        lagging = await http.get("/readyz")
        lag_while_lagging = values((await http.get("/metrics")).text)["agentbus_relay_lag"]
        await checkpoints.set("nats_relay.p1", head)
        caught_up = await http.get("/readyz")
        lag = values((await http.get("/metrics")).text)["agentbus_relay_lag"]
    assert lagging.status_code == 503 and lagging.json()["code"] == "relay_lagging"
    assert "1001 events" in lagging.json()["detail"] and lag_while_lagging == 1001
    assert caught_up.status_code == 200 and lag == 0


async def test_an_unpartitioned_relay_is_measured_by_its_one_checkpoint(
    parts: tuple[Bus, EventLog], engine: Engine
) -> None:
    bus, log = parts
    ctx = GatewayContext(bus=bus, event_log=log, read_models=ReadModels(engine), relay_lag_grace=0.0)
    head = await append_messages(log, 1001)
    async with client(ctx) as http:
        lagging = await http.get("/readyz")
        await Checkpoints(engine).set("nats_relay", head)
        caught_up = await http.get("/readyz")
    assert lagging.status_code == 503 and caught_up.status_code == 200


async def test_readyz_tolerates_a_relay_lag_shorter_than_its_grace(parts: tuple[Bus, EventLog], engine: Engine) -> None:
    """A burst of 1001 events is not a failure while it lasts less than the grace (60 s here)."""
    bus, log = parts
    ctx = GatewayContext(bus=bus, event_log=log, read_models=ReadModels(engine), relay_lag_grace=60.0)
    await append_messages(log, 1001)
    async with client(ctx) as http:
        first, second = await http.get("/readyz"), await http.get("/readyz")
        lag = values((await http.get("/metrics")).text)["agentbus_relay_lag"]
    assert first.status_code == second.status_code == 200
    assert lag == 1001


async def test_metrics_show_the_commands_pending_on_each_consumer_of_the_command_stream(
    parts: tuple[Bus, EventLog], engine: Engine
) -> None:
    bus, log = parts
    await add_consumer(bus, 0)
    sessions = [sid for sid in (f"s{i}" for i in range(100)) if partition_of(sid, 8) == 0][:3]
    for sid in sessions:
        await publish_command(bus, sid, SendMessage(content="waiting"))
    ctx = GatewayContext(bus=bus, event_log=log, read_models=ReadModels(engine))
    async with client(ctx) as http:
        text = (await http.get("/metrics")).text
    assert values(text)['agentbus_commands_pending{consumer="workers-p0"}'] == 3
    assert values(text)['agentbus_commands_ack_pending{consumer="workers-p0"}'] == 0


async def test_readyz_fails_while_there_is_no_command_stream(nats_url: str, engine: Engine) -> None:
    bus = await Bus.connect(nats_url, name="status-test", subjects=Subjects("nostream" + "x"))
    log = EventLog(engine)
    try:
        async with client(GatewayContext(bus=bus, event_log=log, read_models=ReadModels(engine))) as http:
            response = await http.get("/readyz")
    finally:
        await log.close()
        await bus.close()
    assert response.status_code == 503 and response.json()["code"] == "command_stream_down"
    assert "no command stream" in response.json()["detail"]


async def test_a_running_system_after_a_turn_has_no_relay_lag_and_no_pending_commands(
    system: System, session_id: str
) -> None:
    """With a worker's relay (one checkpoint per partition) the lag falls to 0 within 5 s of the answer."""
    async with system.http() as chat:
        answered = await chat.post(f"/sessions/{session_id}/messages", json={"content": "hi"})
    assert answered.status_code == 200
    async with httpx.AsyncClient(base_url=system.http_url) as http, asyncio.timeout(5):
        while (seen := values((await http.get("/metrics")).text))["agentbus_relay_lag"] != 0:
            await asyncio.sleep(0.1)
        ready = await http.get("/readyz")
    pending = {name: value for name, value in seen.items() if name.startswith("agentbus_commands_pending{")}
    assert len(pending) == 8 and set(pending.values()) == {0}
    assert ready.status_code == 200
