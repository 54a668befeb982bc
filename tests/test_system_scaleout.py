"""Two workers on one prefix: command partitions are leased, and a worker that dies has them taken over."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import websockets

from tests.system import System, receive_until


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


async def test_the_partitions_of_a_killed_worker_are_taken_over_and_no_command_is_answered_twice(
    tmp_path: Path, system_env: dict[str, str]
) -> None:
    first = System(tmp_path / "first", system_env).start()
    second = System(tmp_path / "second", system_env).start()
    try:
        taken = owned(first)
        assert taken and owned(second) in (None, [])  # the first worker leased every partition
        sessions = [await second.create_session() for _ in range(6)]
        for session_id in sessions:
            assert 'You said: "before"' in await chat(second, session_id, "before")

        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
        async with asyncio.timeout(20):
            while owned(second) != taken:
                await asyncio.sleep(0.2)
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
