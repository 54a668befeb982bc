"""Sockets under load: 200 WebSockets over 50 sessions of one `agentbus up`, beside raw NATS pub→sub.

Three figures from the same run, on the same nats-server (it prints; it asserts nothing):

1. relay throughput: token frames published raw on the 50 sessions' live
   subjects (as a turn publishes its tokens), relayed by the gateway to the 200
   sockets (4 per session): frames delivered per second, first publish to last frame;
2. raw NATS pub→sub, the yardstick: the same messages to 200 plain nats-py
   subscriptions (4 per subject, one subscriber connection): deliveries per second;
3. turns under that load: every socket sends messages one after another (4
   turns at a time per session, 200 in all): message → first token of its own
   turn and → its final answer, p50/p99, and the frames per second relayed meanwhile.

The client side (200 sockets, the publisher) is this one process, on the same
machine as the system under test: the figures are what both together reach.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass

import httpx
import nats
from websockets.asyncio.client import ClientConnection, connect

from cli.settings import Endpoints
from schemas import Subjects, Token, encode

from ._stats import LATENCY_HEADERS, Summary, ratio, table

SESSIONS = 50
SOCKETS = 200
RELAY_FRAMES = 500
"""Token frames published per session for the throughput figure (each reaches the session's 4 sockets)."""
TURNS_PER_SOCKET = 5
TIMEOUT = 120.0


class SocketsError(RuntimeError):
    """The load run could not go as the protocol says (a refusal, an error frame, a timeout)."""


@dataclass(frozen=True, slots=True)
class SocketFigures:
    sessions: int
    sockets: int
    relay_frames: int  # frames delivered to sockets in the throughput phase
    relay_seconds: float
    raw_deliveries: int
    raw_seconds: float
    turns: int
    first_token: Summary
    final_answer: Summary
    turn_frames: int  # frames the sockets received during the turns
    turn_seconds: float
    slow_closed: int  # sockets the gateway closed as too slow (4008) over the run
    subscriptions: int  # the gateway's live subscriptions while every socket was open

    @property
    def relay_per_second(self) -> float:
        return self.relay_frames / self.relay_seconds

    @property
    def raw_per_second(self) -> float:
        return self.raw_deliveries / self.raw_seconds

    @property
    def turn_frames_per_second(self) -> float:
        return self.turn_frames / self.turn_seconds


class _Socket:
    """One bench socket: counts the relay phase's frames, then runs its own turns."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.relayed = 0

    async def count_relayed(self, marker: str, expected: int) -> None:
        async with asyncio.timeout(TIMEOUT):
            while self.relayed < expected:
                frame = json.loads(await self.ws.recv())
                if frame.get("type") == "token" and frame.get("turn_id") == marker:
                    self.relayed += 1

    async def turns(self, count: int, label: str) -> tuple[list[float], list[float], int]:
        """Send `count` messages one after another; return first-token and final-answer seconds, frames received."""
        first_token: list[float] = []
        final_answer: list[float] = []
        frames = 0
        for i in range(count):
            key = uuid.uuid4().hex
            sent = time.perf_counter()
            await self.ws.send(json.dumps({"type": "message", "content": f"{label} {i}", "idempotency_key": key}))
            first_seen: dict[str, float] = {}  # turn id -> when its first token came (tokens may beat the message)
            mine: str | None = None
            async with asyncio.timeout(TIMEOUT):
                while True:
                    frame = json.loads(await self.ws.recv())
                    frames += 1
                    kind = frame.get("type")
                    if kind == "token":
                        first_seen.setdefault(frame["turn_id"], time.perf_counter())
                    elif kind == "user_message" and frame["data"].get("idempotency_key") == key:
                        mine = frame["data"]["message_id"]
                    elif kind == "final_answer" and mine is not None and frame.get("turn_id") == mine:
                        final_answer.append(time.perf_counter() - sent)
                        first_token.append(first_seen.get(mine, time.perf_counter()) - sent)
                        break
                    elif kind == "error":  # errors come to their sender only: this one is ours
                        raise SocketsError(f"error frame during turn {label} {i}: {frame}")
        return first_token, final_answer, frames


async def measure_sockets(
    endpoints: Endpoints,
    prefix: str,
    *,
    sessions: int = SESSIONS,
    sockets: int = SOCKETS,
    relay_frames: int = RELAY_FRAMES,
    turns_per_socket: int = TURNS_PER_SOCKET,
) -> SocketFigures:
    """Open `sockets` sockets over `sessions` sessions of the system at `endpoints`; measure the three figures."""
    per_session = sockets // sessions
    async with httpx.AsyncClient(base_url=endpoints.http_url, timeout=30.0) as http:
        session_ids = []
        for _ in range(sessions):
            response = await http.post("/api/v1/chat/sessions", json={})
            response.raise_for_status()
            session_ids.append(response.json()["session_id"])
        ws_base = "ws" + endpoints.http_url.removeprefix("http") + "/api/v1/chat/ws/"
        owners = [sid for sid in session_ids for _ in range(per_session)]
        opened = await asyncio.gather(*(_open(ws_base + sid) for sid in owners))
        clients = [_Socket(ws) for ws in opened]
        try:
            subscriptions = await _metric(http, "agentbus_relay_subscriptions")
            slow_before = await _metric(http, "agentbus_ws_closed_slow_total")
            relay_seconds = await _relay(clients, owners, endpoints.nats_url, Subjects(prefix), relay_frames)
            raw_deliveries, raw_seconds = await _raw(endpoints.nats_url, prefix, sessions, per_session, relay_frames)
            started = time.perf_counter()
            results = await asyncio.gather(*(c.turns(turns_per_socket, f"load {n}") for n, c in enumerate(clients)))
            turn_seconds = time.perf_counter() - started
            slow_closed = await _metric(http, "agentbus_ws_closed_slow_total") - slow_before
        finally:
            await asyncio.gather(*(c.ws.close() for c in clients), return_exceptions=True)
    return SocketFigures(
        sessions=sessions,
        sockets=len(clients),
        relay_frames=sum(c.relayed for c in clients),
        relay_seconds=relay_seconds,
        raw_deliveries=raw_deliveries,
        raw_seconds=raw_seconds,
        turns=sum(len(first) for first, _, _ in results),
        first_token=Summary.of_seconds([s for first, _, _ in results for s in first]),
        final_answer=Summary.of_seconds([s for _, final, _ in results for s in final]),
        turn_frames=sum(frames for _, _, frames in results),
        turn_seconds=turn_seconds,
        slow_closed=slow_closed,
        subscriptions=subscriptions,
    )


def socket_tables(figures: SocketFigures) -> str:
    """The figures as bench.run prints them."""
    per_session = figures.sockets // figures.sessions
    published = figures.sessions * (figures.relay_frames // max(figures.sockets, 1))
    throughput = table(
        f"Sockets under load: {figures.sockets} WebSockets over {figures.sessions} sessions ({per_session} per session), "
        "one agentbus up, offline provider, delay 0",
        ["throughput", "messages published", "frames delivered", "s", "frames/s", "vs raw"],
        [
            [
                "gateway relay: NATS -> 1 sub per session -> sockets",
                f"{published:,}",
                f"{figures.relay_frames:,}",
                f"{figures.relay_seconds:.2f}",
                f"{figures.relay_per_second:,.0f}",
                ratio(figures.relay_per_second, figures.raw_per_second),
            ],
            [
                f"raw nats-py pub->sub ({per_session} subscriptions per subject)",
                f"{published:,}",
                f"{figures.raw_deliveries:,}",
                f"{figures.raw_seconds:.2f}",
                f"{figures.raw_per_second:,.0f}",
                "",
            ],
            [
                "gateway relay during the turns below",
                "",
                f"{figures.turn_frames:,}",
                f"{figures.turn_seconds:.2f}",
                f"{figures.turn_frames_per_second:,.0f}",
                "",
            ],
        ],
    )
    latency = table(
        f"Turns under that load: {figures.turns} turns, every socket sending one message after another "
        f"({per_session} turns at a time per session, {figures.sockets} in all)",
        ["latency", *LATENCY_HEADERS],
        [
            ["ws message -> first token (under load)", *figures.first_token.cells()],
            ["ws message -> final_answer (under load)", *figures.final_answer.cells()],
        ],
    )
    facts = (
        f"turns/s {figures.turns / figures.turn_seconds:.1f}; the gateway held {figures.subscriptions} live NATS "
        f"subscriptions for the {figures.sockets} sockets; sockets closed as too slow (4008): {figures.slow_closed}. "
        "Throughput: token frames published raw on the sessions' live subjects, first publish to last frame received; "
        "raw: the same messages to plain subscriptions on one subscriber connection, in this process."
    )
    return "\n".join([throughput, "", latency, facts])


async def _open(url: str) -> ClientConnection:
    ws = await connect(url, max_size=None, compression=None, open_timeout=60)
    hello = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    if hello.get("type") != "connected":
        raise SocketsError(f"expected a connected frame, got {hello}")
    return ws


async def _relay(clients: list[_Socket], owners: list[str], nats_url: str, subjects: Subjects, frames: int) -> float:
    """Publish `frames` tokens on each session's live subject; return the seconds until every socket had its own."""
    marker = f"bench-relay-{uuid.uuid4().hex[:8]}"
    payload = encode(Token(turn_id=marker, content="relayed "))
    counting = [asyncio.create_task(c.count_relayed(marker, frames)) for c in clients]
    nc = await nats.connect(nats_url, name="bench-sockets-publisher")
    try:
        started = time.perf_counter()
        for _ in range(frames):
            for sid in dict.fromkeys(owners):
                await nc.publish(subjects.session_evt(sid), payload)
        await nc.flush()
        await asyncio.gather(*counting)
        return time.perf_counter() - started
    finally:
        for task in counting:
            task.cancel()
        await nc.close()


async def _raw(nats_url: str, prefix: str, sessions: int, per_subject: int, frames: int) -> tuple[int, float]:
    """The same messages to plain subscriptions, `per_subject` on each of `sessions` subjects: (deliveries, seconds)."""
    payload = encode(Token(turn_id="bench-raw", content="relayed "))
    expected = sessions * per_subject * frames
    subjects = [f"{prefix}.bench.raw.{uuid.uuid4().hex[:8]}.{n}" for n in range(sessions)]
    delivered = 0
    done = asyncio.Event()

    async def count(msg: object) -> None:
        nonlocal delivered
        delivered += 1
        if delivered >= expected:
            done.set()

    subscriber = await nats.connect(nats_url, name="bench-sockets-raw-subscriber", pending_size=64 * 1024 * 1024)
    publisher = await nats.connect(nats_url, name="bench-sockets-raw-publisher")
    try:
        for subject in subjects:
            for _ in range(per_subject):
                await subscriber.subscribe(subject, cb=count, pending_msgs_limit=frames * 2)
        await subscriber.flush()
        started = time.perf_counter()
        for _ in range(frames):
            for subject in subjects:
                await publisher.publish(subject, payload)
        await publisher.flush()
        await asyncio.wait_for(done.wait(), TIMEOUT)
        return delivered, time.perf_counter() - started
    finally:
        await publisher.close()
        await subscriber.close()


async def _metric(http: httpx.AsyncClient, name: str) -> int:
    text = (await http.get("/metrics")).text
    for line in text.splitlines():
        if line.split(" ")[0] == name:
            return int(line.split()[1])
    return 0
