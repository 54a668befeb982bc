"""Sockets under load: 200 WebSockets over 50 sessions of one `agentbus up`, beside raw NATS pub→sub.

Four figures from the same run, on the same nats-server (it prints; it asserts nothing):

1. relay throughput: token frames published raw on the 50 sessions' live
   subjects (as a turn publishes its tokens), relayed by the gateway to the 200
   sockets (4 per session): frames delivered per second, first publish to last frame;
2. raw NATS pub→sub, the yardstick: the same messages to 200 plain nats-py
   subscriptions (4 per subject, one subscriber connection): deliveries per second;
3. turns under that load: every socket sends messages one after another (4
   turns at a time per session, 200 in all): message → first token of its own
   turn and → its final answer, p50/p99, and the frames per second relayed meanwhile;
4. turns through a NATS restart: 200 new sockets over 50 new sessions (`?after=0`)
   send messages one after another; in the middle the bench's own nats-server is
   killed (-9) and started again on the same port and store. One socket per
   session leaves during the outage, and any socket that closes comes back with
   `?after=<last position>`, with back-off while NATS is down; a message refused
   meanwhile is sent again with the same idempotency key. Printed: the final
   answers every socket received against its session's turns, duplicate and
   out-of-order positions per socket, positions of the session's log never
   received, the time from the kill to the first frame of a turn sent after it
   (frames already under way at the kill keep coming for a while) and until every
   session answered such a turn, first token outside vs around the restart. On
   an external NATS (`AGENTBUS_NATS_URL`) this phase is skipped: the bench never
   kills a server it did not start.

The client side (200 sockets, the publisher) is this one process, on the same
machine as the system under test: the figures are what both together reach.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
import uuid
from dataclasses import dataclass

import httpx
import nats
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from bus import nats_servers
from bus.embedded import EmbeddedNats
from cli.settings import Endpoints
from schemas import Subjects, Token, encode

from ._services import create_sessions
from ._stats import LATENCY_HEADERS, Summary, ratio, table

SESSIONS = 50
SOCKETS = 200
RELAY_FRAMES = 500
"""Token frames published per session for the throughput figure (each reaches the session's 4 sockets)."""
TURNS_PER_SOCKET = 5
TIMEOUT = 120.0

RESTART_BEFORE = 6.0
"""Seconds of turns before nats-server is killed."""
RESTART_DOWN = 1.0
"""Seconds from the kill to the new nats-server's start."""
RESTART_AFTER = 6.0
"""Seconds of turns once every session answered again; then every socket finishes the turn it is in."""
RECOVERY_TIMEOUT = 60.0
"""Seconds after the kill to wait for every session to answer again."""
TURN_TIMEOUT = 60.0
"""Seconds a socket waits for one turn's answer (sending it again as needed) before it gives it up."""
RESEND_AFTER = 10.0
"""Seconds without the message's `user_message` before it is sent again (same idempotency key: answered once)."""
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 2.0
"""Back-off of a refused message or a refused reconnect: doubling from BACKOFF_FIRST up to BACKOFF_MAX seconds."""
SKIPPED_EXTERNAL = (
    "skipped: AGENTBUS_NATS_URL names an external nats-server, and this bench never kills a server it did not start"
)


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
    restart: RestartFigures | None = None
    restart_skipped: str | None = None  # why there is no `restart`

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
    nats_server: EmbeddedNats | None = None,
) -> SocketFigures:
    """Open `sockets` sockets over `sessions` sessions of the system at `endpoints`; measure the four figures.

    The fourth (turns through a NATS restart) needs `nats_server`, the bench's own server of `endpoints`' NATS:
    without it, that phase is skipped.
    """
    per_session = sockets // sessions
    async with httpx.AsyncClient(base_url=endpoints.http_url, timeout=30.0) as http:
        session_ids = await create_sessions(http, sessions)
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
        restart = None
        if nats_server is not None:
            restart = await measure_restart(http, ws_base, nats_server, sessions=sessions, sockets=sockets)
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
        restart=restart,
        restart_skipped=None if restart is not None else SKIPPED_EXTERNAL,
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
    restart = (
        restart_tables(figures.restart)
        if figures.restart is not None
        else f"Turns through a NATS restart: {figures.restart_skipped}"
    )
    return "\n".join([throughput, "", latency, facts, "", restart])


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
    nc = await nats.connect(nats_servers(nats_url), name="bench-sockets-publisher")
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

    subscriber = await nats.connect(
        nats_servers(nats_url), name="bench-sockets-raw-subscriber", pending_size=64 * 1024 * 1024
    )
    publisher = await nats.connect(nats_servers(nats_url), name="bench-sockets-raw-publisher")
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


# Turns through a NATS restart (figure 4).


@dataclass(frozen=True, slots=True)
class RestartFigures:
    sessions: int
    sockets: int
    seconds: float  # first message to the last socket's last answer
    turns: int  # turns the sockets started
    answered: int  # of them, answered to their sender
    answers_received: int  # final answers of their session's turns that the sockets received, summed over sockets
    answers_expected: int  # every socket, every turn of its session
    duplicates: int  # positions a socket received twice, summed over sockets
    duplicates_worst: int  # the most on one socket
    out_of_order: int  # positions a socket received below one it had already, summed over sockets
    out_of_order_worst: int
    missing: int  # positions of its session's log a socket never received, summed over sockets
    failed_turns: int  # turns whose session recorded a failure (an `error` frame with a position)
    refusals: dict[str, int]  # messages refused (sent again with back-off), by code
    resent: int  # messages sent again with no refusal: no `user_message` in time, or over a new socket
    left: int  # sockets that left on purpose during the outage and came back with ?after=
    gone: float  # kill -> those sockets closed
    closed_by_server: int  # other sockets that closed and came back with ?after=
    reconnects: int
    reconnected: tuple[float, float] | None  # kill -> the first and the last reconnect's `connected`
    turned_away: int  # reconnect attempts refused (NATS down) or failed, each followed by a back-off
    down: float  # kill -> the new nats-server listening
    first_frame: float | None  # kill -> the first frame of a turn first sent after the kill
    while_down: int  # frames the sockets took in between the kill and the restart (under way at the kill)
    every_session: float | None  # kill -> every session answered a turn first sent after the kill
    in_flight: int  # turns in flight at the kill
    in_flight_answered: float | None  # kill -> the last of them answered to its sender
    before: Summary | None  # first token of the turns answered before the kill
    around: Summary | None  # ... in flight at the kill or sent before every session answered again
    after: Summary | None  # ... sent once every session answered again
    outside: Summary | None  # before + after
    no_token: int  # answered turns whose sender got no token (their first token counted at the answer)
    resyncs: int  # the gateway's relay resyncs (log reads after a NATS reconnect)


@dataclass(slots=True)
class _Turn:
    key: str
    content: str
    sent: float  # first send
    sends: int = 0
    message_id: str | None = None
    answered: float | None = None
    first_token: float | None = None


class _Outage:
    """When nats-server was killed and listened again, and what the sockets received after that.

    Frames that were already on their way at the kill (in the gateway's or the
    clients' buffers) keep arriving after it; so "after the restart" is told by
    cause, not by clock: a turn first sent after the kill can only be taken,
    recorded and relayed once NATS is back.
    """

    def __init__(self) -> None:
        self.killed: float | None = None
        self.restarted: float | None = None
        self.gone: float | None = None  # the sockets leaving during the outage are closed
        self.new_keys: set[str] = set()  # idempotency keys of the turns first sent after the kill
        self.new_ids: set[str] = set()  # their message ids (= turn ids), as their user_message frames came
        self.first_frame: float | None = None  # the first frame of such a turn, at any socket
        self.answered_again: dict[str, float] = {}  # session -> the first final answer to such a turn
        self.while_down = 0  # frames the sockets took in between the kill and the restart
        self.answer = asyncio.Event()  # a final answer came (since the last clear)

    def saw(self, session_id: str, frame: dict, now: float) -> None:
        kind = frame.get("type")
        if kind == "final_answer":
            self.answer.set()
        if self.killed is None or now < self.killed:
            return
        if self.restarted is None or now < self.restarted:
            self.while_down += 1
        if kind == "user_message" and frame["data"]["idempotency_key"] in self.new_keys:
            self.new_ids.add(frame["data"]["message_id"])
        elif frame.get("turn_id") not in self.new_ids:
            return
        if self.first_frame is None:
            self.first_frame = now
        if kind == "final_answer":
            self.answered_again.setdefault(session_id, now)


class _Client:
    """A socket that survives closes: it reconnects with `?after=` its last position, with back-off.

    It keeps what it received by position (to count duplicates, disorder and
    gaps) and, per turn id, the first token and the final answer; its own turns
    go one after another, each sent until answered.
    """

    def __init__(self, ws_base: str, session_id: str, outage: _Outage) -> None:
        self.url = ws_base + session_id
        self.session_id = session_id
        self.outage = outage
        self.ws: ClientConnection | None = None
        self.open = asyncio.Event()
        self.wake = asyncio.Event()  # something the turn in progress may wait for came
        self.seen: set[int] = set()
        self.last = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.ids: dict[str, str] = {}  # idempotency key -> message id (= the turn id)
        self.tokens: dict[str, float] = {}  # turn id -> first token
        self.answers: dict[str, float] = {}  # turn id -> final answer
        self.failed: set[str] = set()
        self.refusal: str | None = None
        self.refusals: collections.Counter[str] = collections.Counter()
        self.turns: list[_Turn] = []
        self.resent = 0
        self.leaving = False
        self.closing = False
        self.left = 0
        self.closed_by_server = 0
        self.reconnects = 0
        self.reconnected: list[float] = []  # when each reconnect got its `connected`
        self.turned_away = 0
        self.reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.ws = await _open(self.url + "?after=0")
        self.open.set()
        self.reader = asyncio.create_task(self._read())

    async def leave(self) -> None:
        """Close the socket as a client that goes away; the reader comes back with `?after=`."""
        assert self.ws is not None
        self.leaving = True
        self.left += 1
        await self.ws.close()

    async def stop(self) -> None:
        self.closing = True
        if self.ws is not None:
            with contextlib.suppress(WebSocketException, OSError):
                await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader

    async def _read(self) -> None:
        while True:
            assert self.ws is not None
            with contextlib.suppress(ConnectionClosed):
                async for message in self.ws:
                    self._on_frame(json.loads(message))
            if self.closing:
                return
            self.open.clear()
            if not self.leaving:
                self.closed_by_server += 1
            self.leaving = False
            await self._reconnect()

    async def _reconnect(self) -> None:
        delay = BACKOFF_FIRST
        while not self.closing:
            try:
                ws = await connect(
                    f"{self.url}?after={self.last}", max_size=None, compression=None, open_timeout=TURN_TIMEOUT
                )
                try:
                    hello = json.loads(await asyncio.wait_for(ws.recv(), TURN_TIMEOUT))
                except BaseException:
                    await ws.close()
                    raise
                if hello.get("type") == "connected":
                    self.ws = ws
                    self.reconnects += 1
                    self.reconnected.append(time.perf_counter())
                    self.open.set()
                    self.wake.set()
                    return
                await ws.close()  # NATS down: the gateway said so (service_unavailable) and closes with 1013
            except (OSError, TimeoutError, WebSocketException):
                pass
            self.turned_away += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    def _on_frame(self, frame: dict) -> None:
        now = time.perf_counter()
        kind = frame.get("type")
        position = frame.get("position")
        if kind == "error" and position is None:  # a refusal of what this socket sent (the only one outstanding)
            self.refusal = str(frame.get("data", {}).get("code"))
            self.refusals[self.refusal] += 1
            self.wake.set()
            return
        if position is not None:
            if position in self.seen:
                self.duplicates += 1
                return
            if position < self.last:
                self.out_of_order += 1
            self.seen.add(position)
            self.last = max(self.last, position)
        self.outage.saw(self.session_id, frame, now)
        if kind == "token":
            self.tokens.setdefault(frame["turn_id"], now)
        elif kind == "user_message":
            self.ids[frame["data"]["idempotency_key"]] = frame["data"]["message_id"]
            self.wake.set()
        elif kind == "final_answer":
            self.answers.setdefault(frame["turn_id"], now)
            self.wake.set()
        elif kind == "error":  # the session recorded the turn's failure
            self.failed.add(frame.get("turn_id") or "")
            self.wake.set()

    async def run_turns(self, stop: asyncio.Event, label: str) -> None:
        """Send messages one after another until `stop`; each until its answer comes (or TURN_TIMEOUT)."""
        while not stop.is_set():
            turn = _Turn(key=uuid.uuid4().hex, content=f"{label} {len(self.turns)}", sent=time.perf_counter())
            self.turns.append(turn)
            if self.outage.killed is not None:
                self.outage.new_keys.add(turn.key)
            await self._turn(turn)

    async def _turn(self, turn: _Turn) -> None:
        frame = json.dumps({"type": "message", "content": turn.content, "idempotency_key": turn.key})
        deadline = turn.sent + TURN_TIMEOUT
        backoff = BACKOFF_FIRST
        while time.perf_counter() < deadline:
            if not self.open.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.open.wait(), max(deadline - time.perf_counter(), 0))
                continue
            ws = self.ws
            assert ws is not None
            self.refusal = None
            try:
                await ws.send(frame)
            except ConnectionClosed:
                await asyncio.sleep(0.05)  # the reader sees the close and reconnects
                continue
            turn.sends += 1
            attempt = time.perf_counter()
            while True:
                self.wake.clear()
                message_id = self.ids.get(turn.key)
                if message_id is not None and (message_id in self.answers or message_id in self.failed):
                    turn.message_id = message_id
                    turn.answered = self.answers.get(message_id)
                    turn.first_token = self.tokens.get(message_id)
                    return
                if self.refusal is not None:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
                    break
                now = time.perf_counter()
                if now >= deadline:
                    return
                if message_id is None and (self.ws is not ws or now - attempt >= RESEND_AFTER):
                    self.resent += 1  # recorded or not, it is answered once: same idempotency key
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), 0.5)


async def measure_restart(
    http: httpx.AsyncClient, ws_base: str, nats_server: EmbeddedNats, *, sessions: int, sockets: int
) -> RestartFigures:
    """Turns on `sockets` new sockets over `sessions` new sessions while `nats_server` is killed and started again."""
    per_session = sockets // sessions
    session_ids = await create_sessions(http, sessions)
    outage = _Outage()
    clients = [_Client(ws_base, sid, outage) for sid in session_ids for _ in range(per_session)]
    try:
        await asyncio.gather(*(c.start() for c in clients))
        resyncs_before = await _metric(http, "agentbus_relay_resyncs_total")
        stop = asyncio.Event()
        started = time.perf_counter()
        running = [asyncio.create_task(c.run_turns(stop, f"restart {n}")) for n, c in enumerate(clients)]
        await asyncio.sleep(RESTART_BEFORE)
        await _kill_and_restart(nats_server, outage, clients[per_session - 1 :: per_session])
        assert outage.killed is not None
        killed = outage.killed
        in_flight = [(c, t) for c in clients for t in c.turns if t.sent < killed and (t.answered or killed) >= killed]
        deadline = killed + RECOVERY_TIMEOUT
        while len(outage.answered_again) < sessions or not all(c.ids.get(t.key) in c.answers for c, t in in_flight):
            outage.answer.clear()
            if (remaining := deadline - time.perf_counter()) <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(outage.answer.wait(), remaining)
        await asyncio.sleep(RESTART_AFTER)
        stop.set()
        _, late = await asyncio.wait(running, timeout=TURN_TIMEOUT)
        for task in late:
            task.cancel()
        seconds = time.perf_counter() - started
        await asyncio.sleep(1.0)  # anything extra (a duplicate) would come now
        logs = {}
        for sid in session_ids:
            response = await http.get(f"/api/v1/chat/sessions/{sid}/events", params={"limit": 10_000})
            response.raise_for_status()
            logs[sid] = {e["position"] for e in response.json()}
        resyncs = await _metric(http, "agentbus_relay_resyncs_total") - resyncs_before
    finally:
        await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)
    return _restart_figures(clients, outage, logs, [t for _, t in in_flight], seconds, resyncs)


async def _kill_and_restart(nats_server: EmbeddedNats, outage: _Outage, leaving: list[_Client]) -> None:
    """Kill nats-server (-9), let `leaving` go, start it again on its port and store RESTART_DOWN s after the kill."""
    outage.killed = time.perf_counter()
    nats_server.kill()
    while nats_server.exit_code() is None:  # noqa: ASYNC110 (a child's exit has no event to await; reaped here)
        await asyncio.sleep(0.005)
    await asyncio.gather(*(c.leave() for c in leaving))
    outage.gone = time.perf_counter()
    await asyncio.sleep(max(outage.killed + RESTART_DOWN - time.perf_counter(), 0))
    # Spawned from this thread, not a worker thread: its parent-death signal follows the thread that started it.
    nats_server.spawn()
    deadline = time.perf_counter() + 15
    while True:
        if nats_server.exit_code() is not None:
            raise SocketsError(f"the restarted nats-server exited with {nats_server.exit_code()}")
        try:
            _, writer = await asyncio.open_connection(nats_server.host, nats_server.port)
        except OSError:
            if time.perf_counter() > deadline:
                raise SocketsError(f"the restarted nats-server did not listen on {nats_server.url}") from None
            await asyncio.sleep(0.02)
            continue
        writer.close()
        await writer.wait_closed()
        break
    outage.restarted = time.perf_counter()


def _restart_figures(
    clients: list[_Client],
    outage: _Outage,
    logs: dict[str, set[int]],
    in_flight: list[_Turn],
    seconds: float,
    resyncs: int,
) -> RestartFigures:
    assert outage.killed is not None and outage.restarted is not None
    killed = outage.killed
    sessions = {c.session_id for c in clients}
    keys: dict[str, set[str]] = collections.defaultdict(set)  # session -> the keys of the turns its sockets started
    for c in clients:
        keys[c.session_id].update(t.key for t in c.turns)
    received = sum(sum(c.ids.get(k) in c.answers for k in keys[c.session_id]) for c in clients)
    recovered = max(outage.answered_again.values()) if len(outage.answered_again) == len(sessions) else None
    turns = [t for c in clients for t in c.turns]
    answered = [t for t in turns if t.answered is not None]
    groups: dict[str, list[float]] = {"before": [], "around": [], "after": []}
    for t in answered:
        assert t.answered is not None
        first = (t.first_token or t.answered) - t.sent
        if t.answered < killed:
            groups["before"].append(first)
        elif recovered is not None and t.sent >= recovered:
            groups["after"].append(first)
        else:
            groups["around"].append(first)
    refusals: collections.Counter[str] = collections.Counter()
    for c in clients:
        refusals.update(c.refusals)
    reconnected = [moment for c in clients for moment in c.reconnected]
    flight_answers = [t.answered for t in in_flight if t.answered is not None]

    def since_kill(moment: float | None) -> float | None:
        return None if moment is None else moment - killed

    def summary(samples: list[float]) -> Summary | None:
        return Summary.of_seconds(samples) if samples else None

    return RestartFigures(
        sessions=len(sessions),
        sockets=len(clients),
        seconds=seconds,
        turns=len(turns),
        answered=len(answered),
        answers_received=received,
        answers_expected=sum(len(keys[c.session_id]) for c in clients),
        duplicates=sum(c.duplicates for c in clients),
        duplicates_worst=max(c.duplicates for c in clients),
        out_of_order=sum(c.out_of_order for c in clients),
        out_of_order_worst=max(c.out_of_order for c in clients),
        missing=sum(len(logs[c.session_id] - c.seen) for c in clients),
        failed_turns=len({turn for c in clients for turn in c.failed}),
        refusals=dict(refusals),
        resent=sum(c.resent for c in clients),
        left=sum(c.left for c in clients),
        gone=(outage.gone or killed) - killed,
        closed_by_server=sum(c.closed_by_server for c in clients),
        reconnects=sum(c.reconnects for c in clients),
        reconnected=(min(reconnected) - killed, max(reconnected) - killed) if reconnected else None,
        turned_away=sum(c.turned_away for c in clients),
        down=outage.restarted - killed,
        first_frame=since_kill(outage.first_frame),
        while_down=outage.while_down,
        every_session=since_kill(recovered),
        in_flight=len(in_flight),
        in_flight_answered=since_kill(max(flight_answers, default=killed))
        if len(flight_answers) == len(in_flight)
        else None,
        before=summary(groups["before"]),
        around=summary(groups["around"]),
        after=summary(groups["after"]),
        outside=summary(groups["before"] + groups["after"]),
        no_token=sum(t.first_token is None for t in answered),
        resyncs=resyncs,
    )


def restart_tables(figures: RestartFigures) -> str:
    """The restart phase's figures as bench.run prints them."""
    per_session = figures.sockets // figures.sessions

    def seconds(value: float | None) -> str:
        return "never" if value is None else f"{value:.2f}"

    checks = table(
        f"Turns through a NATS restart: {figures.sockets} new WebSockets over {figures.sessions} new sessions "
        f"({per_session} per session, ?after=0), every socket sending one message after another; "
        f"the bench's nats-server killed (-9) after {RESTART_BEFORE:.0f} s and started again on the same port "
        f"and store {RESTART_DOWN:.0f} s after the kill",
        ["received", "count", "expected"],
        [
            [
                "final answers, at every socket of the session (all its turns)",
                f"{figures.answers_received:,}",
                f"{figures.answers_expected:,}",
            ],
            ["turns answered to their sender", f"{figures.answered:,}", f"{figures.turns:,}"],
            [
                "duplicate positions, all sockets (worst socket)",
                f"{figures.duplicates} ({figures.duplicates_worst})",
                "0",
            ],
            [
                "out-of-order positions, all sockets (worst socket)",
                f"{figures.out_of_order} ({figures.out_of_order_worst})",
                "0",
            ],
            ["positions of the session's log never received, all sockets", str(figures.missing), "0"],
            ["turns recorded as failed", str(figures.failed_turns), "0"],
        ],
    )
    timeline = table(
        "From the kill (-9) of nats-server until",
        ["moment", "s"],
        [
            ["the new nats-server listens (same port, same store)", seconds(figures.down)],
            [
                "the first frame of a turn first sent after the kill, at any socket",
                seconds(figures.first_frame),
            ],
            [
                "every session answered again (to a turn first sent after the kill, at one of its sockets)",
                seconds(figures.every_session),
            ],
            [
                f"every turn in flight at the kill ({figures.in_flight}) answered to its sender",
                seconds(figures.in_flight_answered),
            ],
        ],
    )
    rows = []
    for label, summary in (
        ("outside the restart (before + after)", figures.outside),
        ("  answered before the kill", figures.before),
        ("  sent once every session answered again", figures.after),
        ("around the restart (in flight at the kill, or sent before every session answered again)", figures.around),
    ):
        rows.append([label, *(summary.cells() if summary is not None else ["0", *["-"] * 5])])
    latency = table(
        "ws message (its first send) -> first token of its own turn, at the sender",
        ["turns", *LATENCY_HEADERS],
        rows,
    )
    reconnected = (
        "none reconnected"
        if figures.reconnected is None
        else f"connected again {figures.reconnected[0]:.2f}-{figures.reconnected[1]:.2f} s after the kill"
    )
    refused = ", ".join(f"{code} {n}" for code, n in sorted(figures.refusals.items())) or "none"
    facts = (
        f"turns/s {figures.turns / figures.seconds:.1f} ({figures.turns} turns in {figures.seconds:.2f} s). "
        f"Reconnects with ?after=<last position>: {figures.reconnects} ({figures.left} sockets left on purpose during "
        f"the outage, closed {figures.gone:.2f} s after the kill; {figures.closed_by_server} closed by the gateway), "
        f"{reconnected}; {figures.turned_away} attempts turned away first, each followed by a back-off "
        f"({BACKOFF_FIRST}-{BACKOFF_MAX:.0f} s, doubling). Messages refused and "
        f"sent again with the same idempotency key after a back-off: {refused}; sent again unrefused (no user_message "
        f"within {RESEND_AFTER:.0f} s, or a new socket): {figures.resent}. The gateway's relay resynced "
        f"{figures.resyncs} times. Answered turns whose sender got no token (first token counted at the answer): "
        f"{figures.no_token}. Frames the sockets took in between the kill and the restart, already under way at the "
        f"kill (in the gateway's and this process's buffers): {figures.while_down:,}."
    )
    return "\n".join([checks, "", timeline, "", latency, facts])
