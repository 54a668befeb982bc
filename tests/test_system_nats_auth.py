"""Least privilege on the embedded NATS of `agentbus up`, tried with nats-py as an outside client would.

Only the roles' nkeys get in; an outside service may create sessions, publish
their commands, ask for their events and follow their feeds, and nothing
more; a principal it claims is not believed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import msgspec
import nats
import nats.errors
import pytest
import websockets

from bus.credentials import Credential, new_seed_file
from schemas import CreateSession, Principal, RecordedEvent, SendMessage, SessionReady, Subjects, codec, encode
from schemas.events import AssistantMessage
from tests.system import System, receive_until
from tests.test_examples import EXAMPLES, NODE_DIR, check, npm_installed, summary_of

EMBEDDED = {"AGENTBUS_NATS_URL": "", "AGENTBUS_DATABASE_URL": ""}
FORGED = Principal(id="alice", role="admin")


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """One `agentbus up` on its own embedded services (NATS with accounts), for the whole module."""
    system = System(tmp_path_factory.mktemp("auth") / "data", EMBEDDED).start(timeout=120)
    yield system
    assert system.stop() == 0


class Client:
    """A raw nats-py connection with one role's credential; the permission errors the server sends, in order."""

    def __init__(self, nc: nats.NATS, violations: asyncio.Queue[str]) -> None:
        self.nc = nc
        self.violations = violations

    async def refused(self) -> str:
        """The next permissions violation the server reported (waited for: it comes asynchronously)."""
        return await asyncio.wait_for(self.violations.get(), 10)


@pytest.fixture
async def connect(secured: System) -> AsyncIterator[object]:
    opened: list[nats.NATS] = []

    async def as_role(role: str, seed: Path | None = None) -> Client:
        violations: asyncio.Queue[str] = asyncio.Queue()

        async def on_error(exc: Exception) -> None:
            violations.put_nowait(str(exc))

        credential = Credential(seed or secured.data_dir / "nats" / f"{role}.nk")
        nc = await nats.connect(
            secured.nats_url, error_cb=on_error, allow_reconnect=False, **credential.connect_options()
        )
        opened.append(nc)
        return Client(nc, violations)

    yield as_role
    for nc in opened:
        await nc.close()


async def test_a_client_without_a_credential_or_with_an_unknown_nkey_is_refused(
    secured: System, tmp_path: Path
) -> None:
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(secured.nats_url, allow_reconnect=False, max_reconnect_attempts=0)
    stranger = new_seed_file(tmp_path / "stranger.nk")
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(
            secured.nats_url, allow_reconnect=False, max_reconnect_attempts=0, **stranger.connect_options()
        )


def test_the_credentials_are_files_of_their_owner_and_the_server_command_line_names_none(secured: System) -> None:
    nats_dir = secured.data_dir / "nats"
    for name in ("worker.nk", "gateway.nk", "service.nk", "nats.conf"):
        assert stat.S_IMODE((nats_dir / name).stat().st_mode) == 0o600, name
    pid = int((nats_dir / "nats-server.pid").read_text())
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    seeds = [(nats_dir / f"{role}.nk").read_text().strip() for role in ("worker", "gateway", "service")]
    assert all(seed not in cmdline for seed in seeds) and str(nats_dir / "nats.conf") in cmdline


async def test_a_service_creates_a_session_publishes_a_command_and_follows_it_and_its_forged_principal_is_not_believed(
    secured: System, connect: object
) -> None:
    service = await connect("service")  # type: ignore[operator]
    subjects = Subjects()
    create = CreateSession(session_id="svc-" + uuid.uuid4().hex[:8], principal=FORGED)
    reply = await service.nc.request(subjects.sessions_create, encode(create), timeout=10)
    ready = codec.create_session_replies.decode(reply.data)
    assert isinstance(ready, SessionReady)
    session_id = ready.session_id
    feed = await service.nc.subscribe(subjects.session_evt(session_id))
    key = uuid.uuid4().hex
    command = SendMessage(content="hello from a service", idempotency_key=key, principal=FORGED)
    ack = await service.nc.jetstream().publish(
        subjects.session_cmd(session_id), encode(command), headers={"Nats-Msg-Id": f"{session_id}:{key}"}
    )
    assert ack.stream == subjects.cmd_stream
    async with asyncio.timeout(30):
        async for msg in feed.messages:
            item = codec.feed.decode(msg.data)
            if isinstance(item, RecordedEvent) and isinstance(item.event, AssistantMessage):
                break
    assert 'You said: "hello from a service"' in item.event.content
    # Caught up over the bus: the create claimed alice, an admin; the session was made as the service's (no owner).
    page = await service.nc.request(subjects.session_events(session_id), b'{"after": 0}', timeout=10)
    events = msgspec.json.decode(page.data)["events"]
    assert events[0]["event"]["type"] == "session_created" and events[0]["event"].get("owner") is None


async def test_a_service_may_not_read_commands_or_others_replies_publish_live_events_or_touch_jetstream(
    secured: System, connect: object
) -> None:
    service = await connect("service")  # type: ignore[operator]
    gateway_key = Credential(secured.data_dir / "nats" / "gateway.nk").public_key
    for subject in ("agentbus.session.*.cmd", f"_INBOX.{gateway_key}.>", ">", "agentbus.actor.>"):
        await service.nc.subscribe(subject)
        assert "permissions violation for subscription" in await service.refused(), subject
    await service.nc.publish("agentbus.session.s1.evt", b'{"type":"token","turn_id":"t","content":"forged"}')
    assert "permissions violation for publish" in await service.refused()
    for api in ("$JS.API.INFO", f"$JS.API.STREAM.DELETE.{Subjects().cmd_stream}", "$JS.API.STREAM.LIST"):
        with pytest.raises(nats.errors.TimeoutError):
            await service.nc.request(api, b"", timeout=1)
        assert "permissions violation for publish" in await service.refused(), api


async def test_no_one_but_the_workers_may_publish_live_events_or_manage_streams(
    secured: System, connect: object
) -> None:
    gateway = await connect("gateway")  # type: ignore[operator]
    await gateway.nc.publish("agentbus.session.s1.evt", b"{}")
    assert "permissions violation for publish" in await gateway.refused()
    with pytest.raises(nats.errors.TimeoutError):
        await gateway.nc.request(f"$JS.API.STREAM.DELETE.{Subjects().cmd_stream}", b"", timeout=1)
    assert "permissions violation for publish" in await gateway.refused()
    worker = await connect("worker")  # type: ignore[operator]
    info = await worker.nc.jetstream().stream_info(Subjects().cmd_stream)
    assert info.config.name == Subjects().cmd_stream


async def test_the_cli_publishes_as_the_service_with_the_credential_up_wrote(secured: System) -> None:
    session_id = await secured.create_session()
    published = secured.publish("--session", session_id, "hi from the cli")
    assert published.returncode == 0, published.stderr
    assert msgspec.json.decode(published.stdout)["taken_as"] == "message"
    unknown = secured.publish("--session", "nope-" + uuid.uuid4().hex[:6], "hi")
    assert unknown.returncode == 2 and "unknown_session" in unknown.stdout + unknown.stderr


def test_the_python_example_chats_as_the_service_with_its_credential_file(secured: System) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AGENTBUS_")}
    env.update(
        AGENTBUS_NATS_URL=secured.nats_url,
        AGENTBUS_NATS_CREDENTIALS=str(secured.data_dir / "nats" / "service.nk"),
    )
    text = "hello with a credential"
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / "python" / "client.py"), text, "--key", "auth-1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    check(summary_of(run), text)


async def test_the_gateway_keeps_uploads_and_reports_the_backlog_with_the_little_jetstream_it_may_use(
    secured: System,
) -> None:
    """Its JetStream calls are only its uploads bucket's and the command stream's consumer list."""
    async with secured.http() as client:
        uploaded = await client.post("/upload", files={"file": ("notes.txt", b"forty-two")})
        assert uploaded.status_code == 200, uploaded.text
        name = uploaded.json()["stored_name"]
        assert (await client.get(f"/uploads/{name}")).content == b"forty-two"
    async with httpx.AsyncClient(base_url=secured.http_url) as client:
        assert (await client.get("/readyz")).status_code == 200
        metrics = (await client.get("/metrics")).text
    assert "the command stream is unreadable" not in metrics and 'agentbus_commands_pending{consumer="' in metrics
    session_id = await secured.create_session()
    async with websockets.connect(secured.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": f"what does {name} say?"}))
        frames = await receive_until(ws, "final_answer")
    assert "forty-two" in frames[-1]["content"]  # the worker's tool read it from the same bucket


def test_the_node_example_chats_as_the_service_with_its_credential_file(secured: System) -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for examples/node (install Node.js 18 or later)")
    npm_installed()
    env = {key: value for key, value in os.environ.items() if not key.startswith("AGENTBUS_")}
    env.update(
        AGENTBUS_NATS_URL=secured.nats_url,
        AGENTBUS_NATS_CREDENTIALS=str(secured.data_dir / "nats" / "service.nk"),
    )
    text = "hello from node with a credential"
    run = subprocess.run(
        ["node", "client.mjs", text, "--key", "auth-node-1"],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    check(summary_of(run), text)


async def test_worker_children_of_up_connect_with_the_worker_credential(tmp_path: Path) -> None:
    """`up --workers 2` hands its `agentbus worker` children the worker's seed: they take the commands."""
    system = System(tmp_path / "data", EMBEDDED).start(timeout=120, args=("--workers", "2"))
    try:
        session_id = await system.create_session()
        async with websockets.connect(system.ws_base + session_id) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "message", "content": "hello, children"}))
            frames = await receive_until(ws, "final_answer", timeout=60)
    finally:
        assert system.stop() == 0
    assert 'You said: "hello, children"' in frames[-1]["content"]
