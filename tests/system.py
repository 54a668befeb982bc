"""Drive a real `agentbus up` process the way a user does: HTTP, WebSocket, the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import NamedTuple

import httpx
import nats
import nats.js.errors
import websockets

from bus import Bus, nats_servers, uploads_bucket_name
from schemas import RecordedEvent, Subjects, codec

AGENTBUS = str(Path(sys.executable).parent / "agentbus")


class System:
    """One `agentbus up` process under a data dir."""

    def __init__(self, data_dir: Path, env: Mapping[str, str]) -> None:
        self.data_dir = data_dir
        self.env = {**os.environ, **env}
        self.process: subprocess.Popen[bytes] | None = None
        self.http_url = ""
        self.nats_url = ""
        self.log_path = data_dir.parent / f"{data_dir.name}.log"

    def start(self, timeout: float = 60.0, *, own_group: bool = False, args: tuple[str, ...] = ()) -> System:
        """Start `agentbus up` and wait for its endpoints file.

        `own_group` starts it as a terminal starts a foreground command, in a
        process group of its own, so that `interrupt_group` can signal the
        whole group as Ctrl-C does without reaching the test run.
        """
        endpoints = self.data_dir / "endpoints.json"
        endpoints.unlink(missing_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [AGENTBUS, "up", "--data-dir", str(self.data_dir), "--port", "0", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=own_group,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not endpoints.exists():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"agentbus up exited with {self.process.returncode}:\n{self.log_path.read_text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                self.process.kill()  # never leave a half-started system behind
                self.process.wait()
                raise RuntimeError(f"agentbus up did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.05)
        found = json.loads(endpoints.read_text())
        self.http_url, self.nats_url = found["http_url"], found["nats_url"]
        return self

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> int:
        """Stop the process with `sig` (SIGKILL simulates a crash); return its exit code."""
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(timeout)
        self.process = None
        return code

    def interrupt_group(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> Stopped:
        """Send `sig` to the process group of a `start(own_group=True)`, as a terminal's Ctrl-C does; wait for the exit."""
        assert self.process is not None
        offset = self.log_path.stat().st_size
        started = time.monotonic()
        os.killpg(self.process.pid, sig)
        code = self.process.wait(timeout)
        seconds = time.monotonic() - started
        self.process = None
        return Stopped(code=code, seconds=seconds, output=self.log_path.read_bytes()[offset:].decode())

    def wait_for_output(self, text: str, *, after: int = 0, timeout: float = 30.0) -> str:
        """Wait until the process's output past byte `after` contains `text`; return that output."""
        deadline = time.monotonic() + timeout
        while True:
            output = self.log_path.read_bytes()[after:].decode(errors="replace")
            if text in output:
                return output
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not in the output of agentbus up within {timeout}s:\n{output[-3000:]}")
            time.sleep(0.05)

    @property
    def ws_base(self) -> str:
        return self.http_url.replace("http://", "ws://") + "/api/v1/chat/ws/"

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.http_url + "/api/v1/chat", timeout=30)

    async def create_session(self) -> str:
        async with self.http() as client:
            response = await client.post("/sessions", json={})
            response.raise_for_status()
            return response.json()["session_id"]

    async def messages(self, session_id: str) -> list[dict]:
        async with self.http() as client:
            response = await client.get(f"/sessions/{session_id}/messages")
            response.raise_for_status()
            return response.json()

    def publish(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run_cli("publish", *args)

    def run_cli(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run another `agentbus` command against this system (found through its data dir)."""
        return subprocess.run(
            [AGENTBUS, command, "--data-dir", str(self.data_dir), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )


class Stopped(NamedTuple):
    """How a stopped `agentbus up` ended: exit code, seconds from the signal to the exit, what it wrote meanwhile."""

    code: int
    seconds: float
    output: str


def live_processes_mentioning(path: Path) -> list[str]:
    """The command lines of live processes (zombies excluded) that name `path`: what a stopped system leaves."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue  # ended while we looked
        if str(path) in cmdline and state != "Z":
            found.append(f"{proc.name}: {cmdline}")
    return found


def process_alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie is not)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


async def delete_command_stream(nats_url: str, prefix: str) -> None:
    """Delete the command stream of a test's subject prefix, so runs on an external NATS leave nothing behind."""
    nc = await nats.connect(nats_servers(nats_url))
    try:
        await nc.jetstream().delete_stream(Subjects(prefix).cmd_stream)
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await nc.close()


async def delete_uploads_bucket(nats_url: str, prefix: str) -> None:
    """Delete the uploads bucket (Object Store) of a test's subject prefix, if an upload created it."""
    nc = await nats.connect(nats_servers(nats_url))
    try:
        await nc.jetstream().delete_object_store(uploads_bucket_name(Subjects(prefix)))
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await nc.close()


async def receive_until(ws: websockets.ClientConnection, frame_type: str, timeout: float = 20.0) -> list[dict]:
    """Collect frames up to and including the first of `frame_type`."""
    frames: list[dict] = []
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            frames.append(frame)
            if frame["type"] == frame_type:
                return frames


async def receive_quiet(ws: websockets.ClientConnection, quiet: float = 0.5) -> list[dict]:
    """Collect frames until none arrives for `quiet` seconds."""
    frames: list[dict] = []
    while True:
        try:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), quiet)))
        except TimeoutError:
            return frames


@contextlib.asynccontextmanager
async def publications(nats_url: str, prefix: str) -> AsyncIterator[Counter[int]]:
    """Count, per log position, how often an event is published live on any session of `prefix`, while in the block."""
    bus = await Bus.connect(nats_url, name="publication-counter", subjects=Subjects(prefix))
    feed = await bus.subscribe(f"{prefix}.session.*.evt", codec.feed)
    published: Counter[int] = Counter()

    async def count() -> None:
        async for item in feed:
            if isinstance(item, RecordedEvent):
                published[item.position] += 1

    counter = asyncio.create_task(count())
    try:
        yield published
    finally:
        counter.cancel()
        await feed.close()
        await bus.close()


async def published_once(published: Counter[int], positions: set[int]) -> dict[int, int]:
    """Wait until every one of `positions` was published, then a second more; return those published other than once."""
    async with asyncio.timeout(20):
        while not positions <= set(published):
            await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # let any second publication of the same positions arrive
    return {position: published[position] for position in positions if published[position] != 1}
