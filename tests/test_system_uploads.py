"""Uploads on a real `agentbus up`: HTTP through uvicorn, and an agent whose tools read and delete an upload."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import nats.js.errors
import pytest
import websockets

from bus import MAX_UPLOAD_BYTES, Bus, uploads, uploads_bucket_name
from schemas import Subjects
from tests.system import System, receive_until


@pytest.fixture
async def store(system: System, subject_prefix: str) -> AsyncIterator[Bus]:
    """A connection of the test's own to the system's NATS, to look into the uploads bucket; deleted afterwards."""
    bus = await Bus.connect(system.nats_url, name="uploads-check", subjects=Subjects(subject_prefix))
    yield bus
    try:
        await bus.nc.jetstream().delete_object_store(uploads_bucket_name(bus.subjects))
    except nats.js.errors.NotFoundError:
        pass
    await bus.close()


async def raw_get(system: System, target: str) -> bytes:
    """The status line of a GET sent as written: no client normalizes `..` away."""
    url = urlsplit(system.http_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: {url.netloc}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.readline()
    finally:
        writer.close()


def steps(frames: list[dict], event_type: str) -> list[dict]:
    """The events of a turn's `step` frames of one type."""
    return [f["data"]["data"] for f in frames if f["type"] == "step" and f["data"]["data"]["type"] == event_type]


async def test_an_agent_reads_an_upload_named_in_a_message_and_deletes_it_once_confirmed(
    system: System, store: Bus
) -> None:
    async with system.http() as client:
        uploaded = await client.post("/upload", files={"file": ("minutes.txt", b"Budget approved: 42 units.")})
        assert uploaded.status_code == 200, uploaded.text
    name = uploaded.json()["stored_name"]
    assert await uploads(store).info(name) is not None  # in NATS, not in a directory of the gateway's

    session_id = await system.create_session()
    async with websockets.connect(system.ws_base + session_id) as ws:
        assert json.loads(await ws.recv())["type"] == "connected"
        await ws.send(json.dumps({"type": "message", "content": f"what does {name} say?"}))
        frames = await receive_until(ws, "final_answer")
        [called] = steps(frames, "tool_called")
        [result] = steps(frames, "tool_result")
        assert called["tool"] == "read_upload" and json.loads(called["arguments"]) == {"filename": name}
        assert result["content"].endswith(":\nBudget approved: 42 units.") and not result["is_error"]
        assert "Budget approved: 42 units." in frames[-1]["content"]

        await ws.send(json.dumps({"type": "message", "content": f"delete {name}"}))
        request = (await receive_until(ws, "confirmation_request"))[-1]["data"]
        assert request["command"].startswith("delete_upload")
        assert await uploads(store).info(name) is not None  # nothing is deleted before the user confirms
        reply = {"type": "confirmation_reply", "confirmation_id": request["confirmation_id"], "approved": True}
        await ws.send(json.dumps(reply))
        frames = await receive_until(ws, "final_answer")
    assert steps(frames, "tool_result")[0]["content"] == f"Deleted the upload {name}."
    assert await uploads(store).info(name) is None
    async with system.http() as client:
        assert (await client.get(f"/uploads/{name}")).status_code == 404


async def test_uvicorn_answers_413_while_the_upload_streams_in_and_refuses_traversal(
    system: System, store: Bus
) -> None:
    """The 413 comes while the body is still open: the client sends 10 MB + 1 byte of file and never ends it."""
    url = urlsplit(system.http_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n'
    try:
        writer.write(
            b"POST /api/v1/chat/upload HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n" % url.netloc.encode()
        )
        pieces = [head] + [b"x" * 65536] * (MAX_UPLOAD_BYTES // 65536) + [b"x"]
        for piece in pieces:
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        async with asyncio.timeout(10):  # no final boundary, no last chunk: the body is not over
            status = await reader.readline()
        assert status.startswith(b"HTTP/1.1 413"), status
    finally:
        writer.close()
    bucket = f"OBJ_{uploads_bucket_name(store.subjects)}"
    try:
        assert (await store.nc.jetstream().stream_info(bucket)).state.messages == 0
    except nats.js.errors.NotFoundError:
        pass  # no upload ever made it to the store

    for target in (
        "/api/v1/chat/uploads/../../../pyproject.toml",
        "/api/v1/chat/uploads/..%2F..%2Fpyproject.toml",
        "/api/v1/chat/uploads//etc/passwd",
        "/api/v1/chat/uploads/a%00.txt",
    ):
        assert (await raw_get(system, target)).startswith(b"HTTP/1.1 404"), target
