"""The raw floors of a turn, on the run's own nats-server and PostgreSQL: the least any design pays.

Two figures, each one operation at a time, as a chat turn is:

- request/reply: one core-NATS request to an echo responder in another process
  (`bench.latency.measure_request_reply`): the floor of anything that crosses NATS.
- the durable floor: one JetStream publish awaiting its stored ack (a file-storage
  stream, as the command stream is), then one PostgreSQL commit (an asyncpg INSERT
  of `bench.append`'s row in a transaction): the floor of a turn that is accepted
  durably and recorded before it answers.

Raw nats-py and asyncpg are used on purpose: they are the yardstick.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass

import asyncpg
import nats

from bus import nats_servers
from projections.database import asyncpg_dsn

from ._services import SUBJECT_PREFIX, scratch_database
from ._stats import LATENCY_HEADERS, Summary, table
from .append import _RAW_DDL, _RAW_INSERT, _raw_row
from .latency import echo_responder, measure_request_reply

WARMUP = 50  # operations before the measured ones, as measure_request_reply does


@dataclass(frozen=True, slots=True)
class Floors:
    request_reply: Summary
    request_reply_per_second: float
    durable_turn: Summary
    publish_ack: Summary  # the JetStream half of the durable floor
    commit: Summary  # the PostgreSQL half


def measure_floors(nats_url: str, server_url: str, count: int) -> Floors:
    """Measure both floors `count` times each (after a warm-up), on a scratch subject, stream and database."""
    subject = f"{SUBJECT_PREFIX}.bench.echo.{uuid.uuid4().hex}"
    with echo_responder(nats_url, subject):
        raw = asyncio.run(measure_request_reply(nats_url, subject, count, warmup=WARMUP))
    with scratch_database(server_url, "floor") as database_url:
        turns, publishes, commits = asyncio.run(_durable(nats_url, database_url, count))
    return Floors(
        request_reply=Summary.of_seconds(raw.samples),
        request_reply_per_second=raw.per_second,
        durable_turn=Summary.of_seconds(turns),
        publish_ack=Summary.of_seconds(publishes),
        commit=Summary.of_seconds(commits),
    )


def floors_table(floors: Floors) -> str:
    """The floors as bench.run prints them."""
    return "\n".join(
        [
            table(
                f"[0] raw floors of a turn: {floors.durable_turn.n} in sequence on the same nats-server and PostgreSQL "
                f"(after {WARMUP} warm-up)",
                ["floor", *LATENCY_HEADERS],
                [
                    ["raw nats-py request/reply", *floors.request_reply.cells()],
                    ["durable floor: JetStream publish+ack, then PG commit", *floors.durable_turn.cells()],
                    ["  of which JetStream publish, stored ack", *floors.publish_ack.cells()],
                    ["  of which asyncpg INSERT in a transaction", *floors.commit.cells()],
                ],
            ),
            f"raw request/reply/s: {floors.request_reply_per_second:.1f}; request/reply: one nats-py client, an echo "
            "responder in another process (bench._echo); durable floor: a file-storage stream of its own, the append "
            "benchmark's row in its table",
        ]
    )


async def _durable(
    nats_url: str, database_url: str, count: int, *, warmup: int = WARMUP
) -> tuple[list[float], list[float], list[float]]:
    token = uuid.uuid4().hex
    stream, subject = f"AGENTBUSBENCH_FLOOR_{token}", f"{SUBJECT_PREFIX}.bench.floor.{token}"
    payload = json.dumps({"type": "message", "content": "hello 0", "id": token}).encode()
    nc = await nats.connect(nats_servers(nats_url), name="bench-floor")
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    js = nc.jetstream()
    try:
        for statement in _RAW_DDL:
            await conn.execute(statement)
        await js.add_stream(name=stream, subjects=[subject])  # file storage, the default
        turns: list[float] = []
        publishes: list[float] = []
        commits: list[float] = []
        for i in range(warmup + count):
            sent = time.perf_counter()
            await js.publish(subject, payload, stream=stream, timeout=5.0)
            acked = time.perf_counter()
            async with conn.transaction():
                await conn.execute(_RAW_INSERT, *_raw_row(f"floor-{token}", i + 1))
            done = time.perf_counter()
            if i >= warmup:
                turns.append(done - sent)
                publishes.append(acked - sent)
                commits.append(done - acked)
        return turns, publishes, commits
    finally:
        try:
            await js.delete_stream(stream)
        finally:
            await conn.close()
            await nc.close()
