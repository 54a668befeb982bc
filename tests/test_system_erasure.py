"""Erasing a session on a real `agentbus up`: over REST by an admin, and with `agentbus erase`.

What is left is one tombstone in the log: no history, no views, no commands
on the command stream, no uploads its messages named; replay says who erased it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
import websockets
from nats.aio.client import Client

from actors.config import DEFAULT_CONFIG
from bus import nats_servers
from schemas import Subjects
from tests.system import System, receive_until
from tests.users import ENV, as_service, as_user, token


@pytest.fixture
def system(tmp_path: Path, system_env: dict[str, str]) -> Iterator[System]:
    """An `agentbus up` that verifies the tests' tokens and takes their API key."""
    system = System(tmp_path / "data", {**system_env, **ENV}).start()
    yield system
    if system.process is not None:
        assert system.stop() == 0


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    """A connection of the test's own, to look into the command stream and the uploads."""
    client = await nats.connect(nats_servers(nats_url))
    yield client
    await client.close()


async def stored_commands(nc: Client, prefix: str, session_id: str) -> int:
    """How many commands of the session the command stream holds, acknowledged or not, in any layout."""
    subjects = Subjects(prefix)
    info = await nc.jetstream().stream_info(
        subjects.cmd_stream, subjects_filter=f"{prefix}.*.*.session.{session_id}.cmd"
    )
    return sum((info.state.subjects or {}).values())


async def chat(system: System, session_id: str, content: str, credential: str) -> None:
    """Send one message over the socket and wait for its answer."""
    async with websockets.connect(system.ws_base + f"{session_id}?token={credential}") as ws:
        assert json.loads(await ws.recv())["type"] == "connected"
        await ws.send(json.dumps({"type": "message", "content": content}))
        await receive_until(ws, "final_answer")


async def traces_erased(system: System, session_id: str) -> None:
    """Wait for the worker to have removed the session's commands and uploads (it logs that it did)."""
    output = await asyncio.to_thread(system.wait_for_output, "session_traces_erased", timeout=20)
    [line] = [line for line in output.splitlines() if "session_traces_erased" in line]
    assert session_id in line


async def test_an_admin_erases_a_session_over_rest_and_only_a_tombstone_is_left(
    system: System, nc: Client, subject_prefix: str
) -> None:
    async with as_user(system, "ada") as ada, as_user(system, "root", role="admin") as admin:
        uploaded = await ada.post("/upload", files={"file": ("minutes.txt", b"Budget approved: 42 units.")})
        name = uploaded.json()["stored_name"]
        session_id = (await ada.post("/sessions", json={})).json()["session_id"]
        await chat(system, session_id, f"what does {name} say?", token("ada"))
        assert await stored_commands(nc, subject_prefix, session_id) == 1
        # Its owner is no admin: erasing is answered exactly as for a session that does not exist.
        absent = uuid.uuid4().hex
        refused = await ada.delete(f"/sessions/{session_id}?erase=true")
        nothing = await ada.delete(f"/sessions/{absent}?erase=true")
        assert refused.status_code == 404
        assert refused.text.replace(session_id, "<id>") == nothing.text.replace(absent, "<id>")
        assert (await ada.get(f"/sessions/{session_id}/messages")).json() != []

        erased = await admin.delete(f"/sessions/{session_id}?erase=true")

        assert erased.status_code == 200, erased.text
        assert erased.json()["status"] == "erased" and erased.json()["events_erased"] > 5
        for path in ("/sessions/{}", "/sessions/{}/messages"):
            assert (await admin.get(path.format(session_id))).status_code == 404
        assert session_id not in [s["session_id"] for s in (await admin.get("/sessions")).json()]
        events = (await admin.get(f"/sessions/{session_id}/events?after=0")).json()
        assert [e["event"]["type"] for e in events] == ["session_erased", "stream_erased"]  # + its turn's
        assert events[0]["event"]["erased_by"] == "root" and events[0]["event"]["uploads"] == [name]
        assert "what does" not in json.dumps(events) and "Budget" not in json.dumps(events)
        # Erasing again finds nothing to erase.
        assert (await admin.delete(f"/sessions/{session_id}?erase=true")).status_code == 404
    async with websockets.connect(system.ws_base + f"{session_id}?token={token('root', 'admin')}") as ws:
        assert json.loads(await ws.recv())["data"]["code"] == "unknown_session"
    await traces_erased(system, session_id)
    assert await stored_commands(nc, subject_prefix, session_id) == 0
    async with as_service(system) as service:
        assert (await service.get(f"/uploads/{name}")).status_code == 404
    replayed = system.run_cli("replay", "session", session_id)
    assert replayed.returncode == 0, replayed.stderr
    outline = json.loads(replayed.stdout)
    assert outline["turns"] == [] and [e["erased_by"] for e in outline["erasures"]] == ["root"]


async def test_agentbus_erase_erases_a_session_as_the_operator(system: System, nc: Client, subject_prefix: str) -> None:
    async with as_service(system) as service:
        session_id = (await service.post("/sessions", json={})).json()["session_id"]
        await chat(system, session_id, "hello", token("root", "admin"))
        assert await stored_commands(nc, subject_prefix, session_id) == 1

        result = system.run_cli("erase", session_id)

        assert result.returncode == 0, result.stderr
        receipt = json.loads(result.stdout)
        assert receipt["session_id"] == session_id and receipt["events_erased"] > 3 and receipt["uploads"] == 0
        assert (await service.get(f"/sessions/{session_id}")).status_code == 404
        tombstone, _ = (await service.get(f"/sessions/{session_id}/events?after=0")).json()
        assert tombstone["position"] == receipt["position"]
        assert tombstone["event"]["erased_by"].startswith("cli")
    again = system.run_cli("erase", session_id)
    assert again.returncode == 2 and "nothing to erase" in again.stderr
    await traces_erased(system, session_id)
    assert await stored_commands(nc, subject_prefix, session_id) == 0
    # The worker held the session: its next write fails the version check, and it reloads to no session.
    late = system.publish("--session", session_id, "hello again")
    assert late.returncode == 2 and "does not exist" in late.stderr


async def test_a_worker_expires_closed_sessions_under_its_retention_and_keeps_open_ones(
    tmp_path: Path, system_env: dict[str, str]
) -> None:
    """With any closed session past its retention (a billionth of a day), the worker's sweep erases it."""
    config = tmp_path / "agentbus.toml"
    retention = "closed_sessions_days = 0.000000001\nsweep_interval = 0.1\n"
    config.write_text(DEFAULT_CONFIG.read_text().replace("sweep_interval = 3600\n", retention))
    assert retention in config.read_text()
    system = System(tmp_path / "data", {**system_env, "AGENTBUS_CONFIG": str(config)}).start()
    try:
        kept, closed = await system.create_session(), await system.create_session()
        async with system.http() as client:
            assert (await client.delete(f"/sessions/{closed}")).json()["status"] == "closed"
            output = await asyncio.to_thread(system.wait_for_output, "sessions_expired", timeout=20)
            [line] = [line for line in output.splitlines() if "sessions_expired" in line]
            assert closed in line and kept not in line
            assert (await client.get(f"/sessions/{closed}")).status_code == 404
            assert (await client.get(f"/sessions/{kept}")).json()["status"] == "active"
            [tombstone] = (await client.get(f"/sessions/{closed}/events?after=0")).json()
        assert (tombstone["event"]["erased_by"], tombstone["event"]["reason"]) == ("retention", "expired")
    finally:
        assert system.stop() == 0


async def test_a_board_still_running_when_its_session_is_erased_records_nothing_more(
    tmp_path: Path, system_env: dict[str, str]
) -> None:
    """The worker relaying the tombstone stops the session's actors, the board's among them: it records nothing more."""
    system = System(tmp_path / "data", {**system_env, "AGENTBUS_OFFLINE_DELAY": "0.02"}).start()
    try:
        session_id = await system.create_session()
        async with websockets.connect(system.ws_base + session_id) as ws:
            assert json.loads(await ws.recv())["type"] == "connected"
            await ws.send(json.dumps({"type": "message", "content": "@board rounds=2 Should we split the monolith?"}))
            await receive_until(ws, "expert_speech_chunk")  # the first speech is being spoken
            async with system.http() as client:
                assert (await client.delete(f"/sessions/{session_id}?erase=true")).json()["status"] == "erased"
            output = await asyncio.to_thread(system.wait_for_output, "erased_session_stopped", timeout=30)
            stopped = json.loads(next(line for line in output.splitlines() if "erased_session_stopped" in line))
            assert stopped["session_id"] == session_id and stopped["actors"] >= 2  # the session and its board
        async with system.http() as client:
            left = (await client.get(f"/sessions/{session_id}/events?after=0")).json()
            assert (await client.get(f"/sessions/{session_id}/messages")).status_code == 404
        assert [(e["stream"].partition("-")[0], e["event"]["type"]) for e in left] == [
            ("session", "session_erased"),
            ("board", "stream_erased"),
        ]
    finally:
        assert system.stop() == 0
