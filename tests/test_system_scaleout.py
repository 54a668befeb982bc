"""Two workers on one prefix: command partitions are leased, and a worker that dies has them taken over."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import websockets

from tests.system import System, publications, published_once, receive_until


def owned(system: System) -> list[int] | None:
    """The partitions the system's worker last said it owns (None before it said anything)."""
    latest = None
    for line in system.log_path.read_text().splitlines():
        if '"partitions_owned"' in line:
            latest = json.loads(line)["partitions"]
    return latest


async def chat(system: System, session_id: str, content: str) -> str:
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": content}))
        return (await receive_until(ws, "final_answer"))[-1]["content"]


async def until_owned(system: System, count: int, timeout: float = 20.0) -> list[int]:
    """Wait until the system's worker says it owns `count` partitions; return them."""
    async with asyncio.timeout(timeout):
        while len(partitions := owned(system) or []) != count:
            await asyncio.sleep(0.1)
    return partitions


async def test_a_second_worker_takes_half_of_the_partitions_and_a_killed_workers_half_is_taken_over(
    tmp_path: Path, system_env: dict[str, str]
) -> None:
    first = System(tmp_path / "first", system_env).start()
    second = System(tmp_path / "second", system_env).start()
    try:
        # The first worker owned all 8 partitions until the second joined; each now owns 4 of them.
        first_share, second_share = await until_owned(first, 4), await until_owned(second, 4)
        assert sorted(first_share + second_share) == list(range(8))
        sessions = [await second.create_session() for _ in range(6)]
        for session_id in sessions:
            assert 'You said: "before"' in await chat(second, session_id, "before")

        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
        assert await until_owned(second, 8) == list(range(8))
        for session_id in sessions:
            assert 'You said: "after"' in await chat(second, session_id, "after")
            messages = await second.messages(session_id)
            assert [(m["role"], m["content"][:17]) for m in messages] == [
                ("user", "before"), ("assistant", 'You said: "before'), ("user", "after"), ("assistant", 'You said: "after"'),
            ]  # fmt: skip
    finally:
        if first.process is not None:
            first.stop()
        assert second.stop() == 0


async def test_with_two_workers_each_persisted_event_is_published_live_exactly_once(
    tmp_path: Path, system_env: dict[str, str], nats_url: str, subject_prefix: str
) -> None:
    first = System(tmp_path / "first", system_env).start()
    second = System(tmp_path / "second", system_env).start()
    try:
        async with publications(nats_url, subject_prefix) as published:
            sessions = [await second.create_session() for _ in range(6)]
            for session_id in sessions:
                assert 'You said: "once"' in await chat(second, session_id, "once")
            positions = {event["position"] for session_id in sessions for event in await _events(second, session_id)}
            assert await published_once(published, positions) == {}
    finally:
        first.stop()
        second.stop()


async def _events(system: System, session_id: str) -> list[dict]:
    async with system.http() as client:
        response = await client.get(f"/sessions/{session_id}/events", params={"after": 0})
        response.raise_for_status()
        return response.json()
