"""The live relay under load, through a NATS restart: 40 sockets over 10 sessions of a real `agentbus up`.

nats-server is the test's own (killed with -9 and started again on its port and
store, mid-turn); the machine's NATS and PostgreSQL are left alone. Every
socket connects with `?after=0`, so it must end up with exactly the session's
log: every position once, in order, whatever the restart hid from the live
subjects, and every answer. One socket per session leaves while NATS is down
and comes back with `?after=` its last position: the same holds for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import websockets

from bus.embedded import free_port, nats_server_binary
from tests.system import System

SESSIONS = 10
SOCKETS_PER_SESSION = 4
ANSWERED = re.compile(r'You said: "(before|after) the restart (\d+)')


class OwnNats:
    """A nats-server of the test's own, with JetStream on a store that survives its restarts."""

    def __init__(self, store: Path) -> None:
        self.port = free_port()
        self.command = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(store)]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait()
            self.process = None


class Socket:
    """One client socket of a session, keeping every frame it receives."""

    def __init__(self, ws: websockets.ClientConnection, session_id: str) -> None:
        self.ws = ws
        self.session_id = session_id
        self.frames: list[dict] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in self.ws:
                self.frames.append(json.loads(message))

    def answers(self) -> list[str]:
        return [f["content"] for f in self.frames if f["type"] == "final_answer"]

    def positions(self) -> list[int]:
        return [f["position"] for f in self.frames if "position" in f]

    async def close(self) -> None:
        await self.ws.close()
        await self.reader

    async def reconnect(self, ws_base: str, timeout: float = 30.0) -> None:
        """Connect again with `?after=` the last position seen; while NATS is back only for some, try again."""
        after = max(self.positions(), default=0)
        deadline = time.monotonic() + timeout
        while True:
            ws = await websockets.connect(ws_base + self.session_id + f"?after={after}", max_size=None)
            first = json.loads(await ws.recv())
            if first["type"] == "connected":
                break
            await ws.close()
            assert first["data"]["code"] == "service_unavailable", first
            if time.monotonic() > deadline:
                raise TimeoutError(f"no socket within {timeout} s: {first}")
            await asyncio.sleep(0.2)
        self.ws = ws
        self.reader = asyncio.create_task(self._read())


async def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout} s")
        await asyncio.sleep(0.1)


async def test_40_sockets_over_10_sessions_through_a_nats_restart_get_every_answer_and_position_once_in_order(
    tmp_path: Path, system_env: dict[str, str]
) -> None:
    nats = OwnNats(tmp_path / "nats")
    nats.start()
    env = {**system_env, "AGENTBUS_NATS_URL": nats.url, "AGENTBUS_OFFLINE_DELAY": "0.03", "AGENTBUS_ACK_WAIT": "3"}
    system = System(tmp_path / "data", env).start()
    sockets: list[Socket] = []
    try:
        sessions = [await system.create_session() for _ in range(SESSIONS)]
        for session_id in sessions:
            for _ in range(SOCKETS_PER_SESSION):
                ws = await websockets.connect(system.ws_base + session_id + "?after=0", max_size=None)
                assert json.loads(await ws.recv())["type"] == "connected"
                sockets.append(Socket(ws, session_id))
        # Round one spans the restart: every socket sends a message, NATS dies once tokens stream.
        for i, sock in enumerate(sockets):
            await sock.ws.send(json.dumps({"type": "message", "content": f"before the restart {i} " + "word " * 30}))
        await wait_for(lambda: sum(any(f["type"] == "token" for f in s.frames) for s in sockets) >= 20, 30, "tokens")
        nats.kill()
        killed = time.monotonic()
        away = sockets[SOCKETS_PER_SESSION - 1 :: SOCKETS_PER_SESSION]  # one per session leaves during the outage
        for sock in away:
            await sock.close()
        await asyncio.sleep(1.0)
        nats.start()
        for sock in away:
            await sock.reconnect(system.ws_base)
        await wait_for(lambda: all(len(s.answers()) >= SOCKETS_PER_SESSION for s in sockets), 120, "round one")
        round_one = time.monotonic() - killed
        # Round two, after it: the relay is live again for every socket.
        for i, sock in enumerate(sockets):
            await sock.ws.send(json.dumps({"type": "message", "content": f"after the restart {i}"}))
        await wait_for(lambda: all(len(s.answers()) >= 2 * SOCKETS_PER_SESSION for s in sockets), 120, "round two")
        await asyncio.sleep(1.0)  # anything extra (a duplicate) would come now
        async with httpx.AsyncClient(base_url=system.http_url) as client:
            logs = {
                sid: [e["position"] for e in (await client.get(f"/api/v1/chat/sessions/{sid}/events")).json()]
                for sid in sessions
            }
            metrics = (await client.get("/metrics")).text
        for sock in sockets:
            await sock.close()
    finally:
        for sock in sockets:
            if not sock.reader.done():
                sock.reader.cancel()
        assert system.stop() == 0
        nats.stop()
    print(f"\nrelay load: round one answered {round_one:.1f} s after nats-server was killed")
    resyncs = next(
        int(line.split()[1]) for line in metrics.splitlines() if line.startswith("agentbus_relay_resyncs_total ")
    )
    assert resyncs >= 1
    for i, sock in enumerate(sockets):
        seen = sock.positions()
        assert seen == sorted(set(seen)), f"socket {i}: a position twice or out of order"
        assert seen == logs[sock.session_id], f"socket {i}: {sorted(set(logs[sock.session_id]) - set(seen))} missing"
        first = i - i % SOCKETS_PER_SESSION  # the session's sockets are numbered first .. first + 3
        expected = sorted((when, n) for when in ("before", "after") for n in range(first, first + SOCKETS_PER_SESSION))
        answered = sorted((m[1], int(m[2])) for a in sock.answers() if (m := ANSWERED.match(a)))
        assert answered == expected, f"socket {i}: answers to {answered}"
