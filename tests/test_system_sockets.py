"""The chat socket's live relay under a real `agentbus up`, and a second `agentbus gateway` beside it.

One NATS subscription per session per gateway, fanned out to its sockets; a
refusal reaches the socket whose command it refuses and no other; a slow
client is closed with 4008 while the others get every frame; reconnecting with
`?after=` across a gateway restart gives every position once, in order.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from bus import Bus
from bus.embedded import free_port
from schemas import Subjects, Token
from tests.system import AGENTBUS, System, receive_quiet, receive_until


class Gateway:
    """An `agentbus gateway` process on the services (and subject prefix) of a running system."""

    def __init__(self, system: System, log_path: Path, port: int | None = None) -> None:
        self.env = system.env
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/v1/chat/ws/"

    def start(self, timeout: float = 30.0) -> Gateway:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [AGENTBUS, "gateway", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"agentbus gateway exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.http_url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop(signal.SIGKILL)
                raise RuntimeError(f"agentbus gateway did not get ready:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGINT) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(30)
        self.process = None
        return code


@pytest.fixture
def second_gateway(system: System, tmp_path: Path) -> Gateway:
    gateway = Gateway(system, tmp_path / "gateway.log").start()
    yield gateway
    if gateway.process is not None:
        assert gateway.stop() == 0


async def metric(http_url: str, name: str) -> int:
    async with httpx.AsyncClient(base_url=http_url) as client:
        text = (await client.get("/metrics")).text
    return next(int(line.split()[1]) for line in text.splitlines() if line.split(" ")[0] == name)


async def connected(url: str, **kwargs: object) -> websockets.ClientConnection:
    ws = await websockets.connect(url, **kwargs)  # type: ignore[arg-type]
    assert json.loads(await ws.recv())["type"] == "connected"
    return ws


def positions(frames: list[dict]) -> list[int]:
    return [f["position"] for f in frames if "position" in f]


async def log_positions(system: System, session_id: str) -> list[int]:
    async with system.http() as client:
        return [e["position"] for e in (await client.get(f"/sessions/{session_id}/events")).json()]


# --- errors go to their sender only -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "answer"),
    [
        ({"type": "message", "content": "@board"}, {"type": "error", "code": "board_needs_topic"}),
        ({"type": "reply", "request_id": "nope-q1", "content": "Ada"}, {"type": "error", "code": "unknown_request"}),
        (
            {"type": "confirmation_reply", "confirmation_id": "nope-c1", "approved": True},
            {"type": "error", "code": "unknown_confirmation"},
        ),
        ({"type": "cancel"}, {"type": "result", "status": "cancelled"}),  # the seed's answer to a cancel of nothing
    ],
)
async def test_a_refusal_reaches_the_socket_that_sent_the_command_and_no_other(
    system: System, session_id: str, frame: dict, answer: dict
) -> None:
    sender = await connected(system.ws_base + session_id)
    other = await connected(system.ws_base + session_id)
    try:
        await sender.send(json.dumps(frame))
        heard = json.loads(await asyncio.wait_for(sender.recv(), 10))
        assert await receive_quiet(other, 1.0) == []
        assert await receive_quiet(sender, 0.3) == []
    finally:
        await sender.close()
        await other.close()
    assert heard["type"] == answer["type"]
    assert heard["data"].get("code", heard["data"].get("status")) == answer.get("code", answer.get("status"))


async def test_two_sockets_replying_to_unknown_ids_each_hear_of_their_own(system: System, session_id: str) -> None:
    first = await connected(system.ws_base + session_id)
    second = await connected(system.ws_base + session_id)
    try:
        await first.send(json.dumps({"type": "reply", "request_id": "first-q", "content": "a"}))
        await second.send(json.dumps({"type": "reply", "request_id": "second-q", "content": "b"}))
        heard_first = (await receive_until(first, "error"))[-1]
        heard_second = (await receive_until(second, "error"))[-1]
        assert await receive_quiet(first, 0.5) == [] and await receive_quiet(second, 0.1) == []
    finally:
        await first.close()
        await second.close()
    assert "first-q" in heard_first["data"]["message"] and "second-q" in heard_second["data"]["message"]


# --- the seed's socket behaviour, fixed where it was wrong ------------------------------------------------------


async def test_an_idle_socket_gets_an_unprompted_pong_and_stays_open(tmp_path: Path, system_env: dict) -> None:
    """The seed sends `pong` after 300 s of silence; AGENTBUS_WS_IDLE_PING makes that 0.5 s here."""
    system = System(tmp_path / "idle", {**system_env, "AGENTBUS_WS_IDLE_PING": "0.5"}).start()
    try:
        session_id = await system.create_session()
        async with websockets.connect(system.ws_base + session_id, ping_interval=None) as ws:
            await ws.recv()
            started = time.monotonic()
            unprompted = json.loads(await asyncio.wait_for(ws.recv(), 5))
            waited = time.monotonic() - started
            again = json.loads(await asyncio.wait_for(ws.recv(), 5))
            await ws.send(json.dumps({"type": "message", "content": "still here"}))
            final = (await receive_until(ws, "final_answer"))[-1]
    finally:
        assert system.stop() == 0
    assert unprompted == {"type": "pong"} and again == {"type": "pong"} and 0.4 < waited < 3
    assert 'You said: "still here"' in final["content"]


async def test_a_socket_to_a_closed_session_gets_the_seeds_error_and_a_1000_close(
    system: System, session_id: str
) -> None:
    async with system.http() as client:
        assert (await client.delete(f"/sessions/{session_id}")).status_code == 200
    async with websockets.connect(system.ws_base + session_id) as ws:
        error = json.loads(await ws.recv())
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert error == {"type": "error", "data": {"message": "Session is closed", "code": "session_closed"}}
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    assert closed.value.rcvd.reason == "Session closed"


async def test_a_frame_nested_1000_deep_gets_an_error_and_the_socket_stays_open(
    system: System, session_id: str
) -> None:
    nested = '{"a":' * 1000 + "1" + "}" * 1000  # deeper than the decoder recurses
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(nested)
        error = json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}
    assert error["type"] == "error" and error["data"]["code"] == "invalid_frame"
    assert "nested too deeply" in error["data"]["message"]


@pytest.mark.parametrize("after", [str(2**63), "-1", "soon"])
async def test_an_after_out_of_range_is_a_policy_close_with_a_reason(
    system: System, session_id: str, after: str
) -> None:
    async with websockets.connect(system.ws_base + session_id + f"?after={after}") as ws:
        error = json.loads(await ws.recv())
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert error["type"] == "error" and error["data"]["code"] == "invalid_request"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert closed.value.rcvd.reason.startswith("invalid request: ")


async def test_after_the_largest_position_is_accepted_and_replays_nothing(system: System, session_id: str) -> None:
    async with websockets.connect(system.ws_base + session_id + f"?after={2**63 - 1}") as ws:
        assert json.loads(await ws.recv())["type"] == "connected"
        assert await receive_quiet(ws, 0.5) == []


# --- the fan-out -------------------------------------------------------------------------------------------------


async def test_a_gateway_holds_one_subscription_per_session_whatever_its_sockets(system: System) -> None:
    sessions = [await system.create_session() for _ in range(2)]
    sockets = [await connected(system.ws_base + sid) for sid in sessions for _ in range(4)]
    try:
        assert await metric(system.http_url, "agentbus_relay_subscriptions") == 2
        await sockets[0].send(json.dumps({"type": "message", "content": "to four sockets"}))
        answers = [(await receive_until(ws, "final_answer"))[-1]["content"] for ws in sockets[:4]]
        assert len(set(answers)) == 1 and 'You said: "to four sockets"' in answers[0]
        assert [await receive_quiet(ws, 0.2) for ws in sockets[4:]] == [[]] * 4  # the other session's
    finally:
        for ws in sockets:
            await ws.close()
    async with asyncio.timeout(5):
        while await metric(system.http_url, "agentbus_relay_subscriptions"):
            await asyncio.sleep(0.1)


class StalledClient:
    """A WebSocket client that reads nothing until told to: what it does not read backs up into the gateway."""

    def __init__(self, url: str) -> None:
        uri = parse_uri(url)
        self.protocol = ClientProtocol(uri, max_size=None)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: it sets the window
        self.sock.connect((uri.host, uri.port))
        self.sock.setblocking(False)
        self.protocol.send_request(self.protocol.connect())
        self.sock.sendall(b"".join(self.protocol.data_to_send()))

    async def read_until_closed(self, timeout: float = 30.0) -> tuple[int, int | None, str]:
        """Read everything: return the text frames received and the close code and reason the server sent."""
        loop = asyncio.get_running_loop()
        texts = 0
        async with asyncio.timeout(timeout):
            while self.protocol.close_code is None:
                data = await loop.sock_recv(self.sock, 65536)
                if not data:
                    self.protocol.receive_eof()
                    break
                self.protocol.receive_data(data)
                texts += sum(isinstance(e, Frame) and e.opcode is Opcode.TEXT for e in self.protocol.events_received())
        self.sock.close()
        return texts, self.protocol.close_code, self.protocol.close_reason


async def test_a_slow_client_is_closed_with_4008_while_the_others_get_every_frame(
    tmp_path: Path, system_env: dict
) -> None:
    """3000 frames of 1 kB: two readers get all of them in order; one that reads nothing is closed past 64 waiting."""
    system = System(tmp_path / "slow", {**system_env, "AGENTBUS_WS_BUFFER": "64"}).start()
    count = 3000
    bus = await Bus.connect(system.nats_url, name="slow-test", subjects=Subjects(system.env["AGENTBUS_SUBJECT_PREFIX"]))
    try:
        session_id = await system.create_session()
        fast = [await connected(system.ws_base + session_id, max_size=None) for _ in range(2)]
        slow = StalledClient(system.ws_base + session_id)
        async with asyncio.timeout(10):
            while await metric(system.http_url, "agentbus_ws_open") < 3:
                await asyncio.sleep(0.05)

        async def read_all(ws: websockets.ClientConnection) -> list[str]:
            seen: list[str] = []
            async with asyncio.timeout(60):
                while len(seen) < count:
                    frame = json.loads(await ws.recv())
                    if frame["type"] == "token":
                        seen.append(frame["content"][:6])
            return seen

        readers = [asyncio.create_task(read_all(ws)) for ws in fast]
        subject = bus.subjects.session_evt(session_id)
        for i in range(count):
            await bus.publish(subject, Token(turn_id="t-slow", content=f"{i:06}" + "x" * 1000))
        await bus.flush()
        got = await asyncio.gather(*readers)  # while the slow client has read nothing at all
        closed_slow = await metric(system.http_url, "agentbus_ws_closed_slow_total")
        texts, code, reason = await slow.read_until_closed()
        for ws in fast:
            await ws.send(json.dumps({"type": "ping"}))
            assert (await receive_until(ws, "pong"))[-1] == {"type": "pong"}
            await ws.close()
    finally:
        await bus.close()
        assert system.stop() == 0
    assert got == [[f"{i:06}" for i in range(count)]] * 2
    assert closed_slow == 1
    assert 0 < texts < count and code == 4008
    assert "too slow" in reason and "reconnect with after=" in reason


# --- two gateways, and a gateway restart -------------------------------------------------------------------------


async def until_answers(ws: websockets.ClientConnection, answers: int, timeout: float = 30.0) -> list[dict]:
    """Collect frames up to and including the `answers`-th final answer."""
    frames: list[dict] = []
    async with asyncio.timeout(timeout):
        while sum(f["type"] == "final_answer" for f in frames) < answers:
            frames.append(json.loads(await ws.recv()))
    return frames


async def test_two_gateway_processes_serve_one_session_to_their_sockets_alike(
    system: System, second_gateway: Gateway, session_id: str
) -> None:
    """Two sockets on `agentbus up`, two on an `agentbus gateway`: the same positions, tokens and answers."""
    bases = [system.ws_base, system.ws_base, second_gateway.ws_base, second_gateway.ws_base]
    sockets = [await connected(base + session_id + "?after=0") for base in bases]
    try:
        await sockets[0].send(json.dumps({"type": "message", "content": "from gateway one"}))
        await sockets[2].send(json.dumps({"type": "message", "content": "from gateway two"}))
        seen = await asyncio.gather(*(until_answers(ws, 2) for ws in sockets))
        await sockets[3].send(json.dumps({"type": "message", "content": "@board"}))
        refused = (await receive_until(sockets[3], "error"))[-1]
        quiet = [await receive_quiet(ws, 0.5) for ws in sockets[:3]]
        urls = (system.http_url, second_gateway.http_url)
        subscriptions = [await metric(url, "agentbus_relay_subscriptions") for url in urls]
    finally:
        for ws in sockets:
            await ws.close()
    log = await log_positions(system, session_id)
    assert all(frames == seen[0] for frames in seen[1:])  # every frame alike, in the same order
    assert positions(seen[0]) == log  # the whole log once: both turns; the refusal recorded nothing
    answers = [f["content"] for f in seen[0] if f["type"] == "final_answer"]
    assert sorted(answer.split('"')[1] for answer in answers) == ["from gateway one", "from gateway two"]
    assert refused["data"]["code"] == "board_needs_topic" and quiet == [[]] * 3
    assert subscriptions == [1, 1]


async def test_reconnecting_with_after_across_a_gateway_restart_gives_every_position_once_in_order(
    tmp_path: Path, system_env: dict
) -> None:
    """The gateway is killed (-9) mid-turn and restarted; the client resumes from the last position it saw."""
    system = System(tmp_path / "data", {**system_env, "AGENTBUS_OFFLINE_DELAY": "0.05"}).start()
    gateway = Gateway(system, tmp_path / "gateway.log").start()
    try:
        session_id = await system.create_session()
        async with websockets.connect(gateway.ws_base + session_id + "?after=0") as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "message", "content": "across a gateway restart " * 8}))
            before = await receive_until(ws, "token")
            gateway.stop(signal.SIGKILL)
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    before.append(json.loads(await ws.recv()))
        gateway.start()
        last = max(positions(before))
        async with websockets.connect(gateway.ws_base + session_id + f"?after={last}") as ws:
            await ws.recv()
            after = await receive_until(ws, "final_answer", timeout=30)
            after += await receive_quiet(ws, 0.5)
        log = await log_positions(system, session_id)
    finally:
        if gateway.process is not None:
            gateway.stop()
        assert system.stop() == 0
    assert positions(before) + positions(after) == log
    [answer] = [f for f in after if f["type"] == "final_answer"]
    assert answer["content"].startswith('You said: "across a gateway restart')
