"""WebSocket message → first token latency of the full system, against a raw NATS request/reply.

The system path is: client → gateway WebSocket → JetStream command stream →
worker → session actor (event appended) → turn actor (event appended) →
offline provider → token frames on NATS → gateway → client. The baseline is
the least any NATS-based design pays per turn: one core-NATS request/reply
between two processes. Raw nats-py is used on purpose: it is the yardstick.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
from websockets.asyncio.client import connect

from bus import nats_servers
from cli.settings import Endpoints

from ._services import die_with_parent, stop_process
from ._stats import Summary

TURN_TIMEOUT = 30.0


class TurnError(RuntimeError):
    """A turn did not complete as the protocol says."""


@dataclass(frozen=True, slots=True)
class TurnResults:
    first_token: list[float]  # seconds, one per measured turn, in order
    final_answer: list[float]
    elapsed: float  # wall time of the whole measured sequence
    warmup: int
    session_id: str
    server_cpu: float  # CPU seconds `agentbus up` used during the measured sequence
    client_cpu: float  # CPU seconds this process used during the measured sequence

    @property
    def turns_per_second(self) -> float:
        return len(self.first_token) / self.elapsed


async def measure_turns(
    endpoints: Endpoints, turns: int, server_cpu: Callable[[], float], *, warmup: int = 20
) -> TurnResults:
    """Send `warmup + turns` messages on one session's WebSocket, one at a time; time the measured ones."""
    async with httpx.AsyncClient(timeout=30.0) as http:
        response = await http.post(f"{endpoints.http_url}/api/v1/chat/sessions", json={})
        response.raise_for_status()
        session_id = response.json()["session_id"]
    ws_url = "ws" + endpoints.http_url.removeprefix("http") + f"/api/v1/chat/ws/{session_id}"
    first_token: list[float] = []
    final_answer: list[float] = []
    async with connect(ws_url, max_size=None, compression=None) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), TURN_TIMEOUT))
        if hello.get("type") != "connected":
            raise TurnError(f"expected a connected frame, got {hello}")
        for i in range(warmup):
            await _turn(ws, f"warmup {i}")
        server_before, client_before = server_cpu(), time.process_time()
        started = time.perf_counter()
        for i in range(turns):
            to_token, to_final = await _turn(ws, f"hello {i}")
            first_token.append(to_token)
            final_answer.append(to_final)
        elapsed = time.perf_counter() - started
        server, client = server_cpu() - server_before, time.process_time() - client_before
    return TurnResults(first_token, final_answer, elapsed, warmup, session_id, server, client)


async def _turn(ws, content: str) -> tuple[float, float]:
    """Send one message; return seconds to its first token and to its final answer."""
    sent = time.perf_counter()
    await ws.send(json.dumps({"type": "message", "content": content}))
    first: float | None = None
    turn_id: str | None = None
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), TURN_TIMEOUT))
        kind = frame.get("type")
        if kind == "token" and first is None:
            first = time.perf_counter() - sent
            turn_id = frame.get("turn_id")
        elif kind == "final_answer" and first is not None and frame.get("turn_id") == turn_id:
            done = time.perf_counter() - sent
            # The offline answer quotes the message: proves this answer is to this message.
            if f'"{content}"' not in frame.get("content", ""):
                raise TurnError(f"answer to {content!r} does not quote it: {frame.get('content')!r}")
            return first, done
        elif kind == "error":
            raise TurnError(f"error frame during turn {content!r}: {frame}")


@dataclass(frozen=True, slots=True)
class RequestReplyResults:
    samples: list[float]
    elapsed: float

    @property
    def per_second(self) -> float:
        return len(self.samples) / self.elapsed


@contextlib.contextmanager
def echo_responder(nats_url: str, subject: str) -> Iterator[None]:
    """Run the raw echo responder (`bench._echo`) in its own process until the block ends."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench._echo", nats_url, subject],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,  # where `bench` is importable
        preexec_fn=die_with_parent,
        start_new_session=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else b""
        if line.strip() != b"ready":
            raise RuntimeError(f"echo responder did not start (exit code {process.poll()})")
        yield
    finally:
        stop_process(process, timeout=5.0)
        if process.stdout:
            process.stdout.close()


async def measure_request_reply(nats_url: str, subject: str, count: int, *, warmup: int = 50) -> RequestReplyResults:
    """Time `count` sequential raw nats-py requests to the echo responder."""
    payload = json.dumps({"type": "message", "content": "hello 0", "id": uuid.uuid4().hex}).encode()
    nc = await nats.connect(nats_servers(nats_url), name="bench-requester")
    try:
        for _ in range(warmup):
            await nc.request(subject, payload, timeout=5.0)
        samples: list[float] = []
        started = time.perf_counter()
        for _ in range(count):
            sent = time.perf_counter()
            reply = await nc.request(subject, payload, timeout=5.0)
            samples.append(time.perf_counter() - sent)
            if reply.data != payload:
                raise RuntimeError("the echo responder changed the payload")
        return RequestReplyResults(samples, time.perf_counter() - started)
    finally:
        await nc.close()


def split_summary(samples: list[float], parts: int = 10) -> tuple[Summary, Summary]:
    """Summaries of the first and the last tenth of `samples` (does latency drift as history grows?)."""
    size = max(1, len(samples) // parts)
    return Summary.of_seconds(samples[:size]), Summary.of_seconds(samples[-size:])
