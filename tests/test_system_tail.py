"""`agentbus tail` on a real `agentbus up`: the log, then the live feed, one readable line per item, until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

import pytest

from tests.system import AGENTBUS, System

LINE_WAIT = 20.0
"""Seconds a line the test expects may take to come."""
STOP_WAIT = 5.0
"""Seconds from Ctrl-C to the exit of `agentbus tail`."""


class Tail:
    """A running `agentbus tail`, read line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    async def until(self, text: str) -> list[str]:
        """Read lines up to and including the first that contains `text`; return them."""
        assert self.process.stdout is not None
        read: list[str] = []
        async with asyncio.timeout(LINE_WAIT):
            while True:
                line = (await self.process.stdout.readline()).decode()
                if not line:
                    stderr = await self.process.stderr.read() if self.process.stderr else b""
                    raise AssertionError(f"tail ended before {text!r}: {read} {stderr.decode()}")
                read.append(line.rstrip("\n"))
                if text in line:
                    self.lines += read
                    return read

    async def interrupt(self) -> int:
        """Send Ctrl-C's SIGINT; return the exit code."""
        self.process.send_signal(signal.SIGINT)
        async with asyncio.timeout(STOP_WAIT):
            return await self.process.wait()


@contextlib.asynccontextmanager
async def tail(system: System, *args: str) -> AsyncIterator[Tail]:
    process = await asyncio.create_subprocess_exec(
        AGENTBUS,
        "tail",
        "--data-dir",
        str(system.data_dir),
        *args,
        env=system.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield Tail(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def chat(system: System, session_id: str, content: str) -> str:
    """Send a message through REST (it returns once answered); return the answer."""
    async with system.http() as client:
        response = await client.post(f"/sessions/{session_id}/messages", json={"content": content})
        response.raise_for_status()
        return str(response.json()["content"])


async def log_positions(system: System, session_id: str) -> dict[int, str]:
    async with system.http() as client:
        events = (await client.get(f"/sessions/{session_id}/events")).json()
    return {event["position"]: event["event"]["type"] for event in events}


def position_of(line: str) -> int | None:
    first = line.split(maxsplit=1)[0]
    return int(first) if first.isdigit() else None


async def test_tail_shows_the_user_message_the_tokens_as_they_stream_and_the_answer_with_positions(
    system: System, session_id: str
) -> None:
    async with tail(system, session_id) as running:
        # The catch-up printed the session's creation: it is subscribed (before the catch-up) and following.
        [created] = await running.until("session_created")
        answer_task = asyncio.create_task(chat(system, session_id, "hello"))
        lines = await running.until("assistant_message")
        answer = await answer_task
        assert await running.interrupt() == 0
    user = next(line for line in lines if " user_message " in line)
    assert user.split()[1:] == ["user_message", "user", "hello"]
    [tokens] = [line for line in lines if " token " in line]
    assert position_of(tokens) is None and tokens.split(maxsplit=2)[1] == "assistant"
    assert tokens.split(maxsplit=2)[2] == answer  # every token of the answer, inline on one line
    final = lines[-1]
    assert final.split(maxsplit=3)[1:] == ["assistant_message", "assistant", answer]
    printed = {position_of(line): line.split()[1] for line in [created, *lines] if position_of(line) is not None}
    assert printed == await log_positions(system, session_id)  # every position once, with its type


async def test_tail_after_a_position_skips_the_events_up_to_it(system: System, session_id: str) -> None:
    await chat(system, session_id, "first")
    log = await log_positions(system, session_id)
    first_answer = max(position for position, kind in log.items() if kind == "assistant_message")
    async with tail(system, session_id, "--after", str(first_answer)) as running:
        await asyncio.sleep(0.5)  # it printed nothing of the past, and is following
        answer = await chat(system, session_id, "second")
        lines = await running.until("assistant_message")
        assert await running.interrupt() == 0
    positions = [position for line in lines if (position := position_of(line)) is not None]
    assert positions == sorted(
        position for position in await log_positions(system, session_id) if position > first_answer
    )
    assert lines[-1].endswith(answer)


async def test_tail_of_a_session_not_in_the_log_exits_non_zero_saying_so(system: System) -> None:
    result = await asyncio.to_thread(system.run_cli, "tail", "no-such-session")
    assert result.returncode == 1
    assert "session no-such-session is not in the log" in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_tail_stops_at_once_and_cleanly_on_a_signal_while_idle(
    system: System, session_id: str, sig: signal.Signals
) -> None:
    async with tail(system, session_id) as running:
        await running.until("session_created")
        running.process.send_signal(sig)
        async with asyncio.timeout(STOP_WAIT):
            assert await running.process.wait() == 0
        assert running.process.stderr is not None
        assert (await running.process.stderr.read()).decode() == ""  # no traceback
