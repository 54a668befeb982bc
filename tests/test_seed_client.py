"""A client written for the seed's chat router, played against agentbus unchanged.

`SeedClient` reads and sends only what the seed's protocol had (frame types
and fields, REST paths and bodies, as in the seed's `agentkit_chat_routes`):
frames it does not know it skips, as a seed client did. Each test is one of
the flows such a client ran: a chat, a confirmation, an ask_human, a board.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import websockets

from tests.system import System

SESSION_FIELDS = {"session_id", "agent_name", "status", "metadata", "created_at", "updated_at"}
MESSAGE_FIELDS = {"message_id", "session_id", "role", "content", "tool_call_id", "agent_name", "created_at"}
TIMEOUT = 60.0


class SeedClient:
    """The seed's client: REST under /api/v1/chat and one socket per session, seed shapes only."""

    def __init__(self, system: System) -> None:
        self.http = httpx.AsyncClient(base_url=system.http_url + "/api/v1/chat", timeout=TIMEOUT)
        self.ws_base = system.ws_base
        self.ws: websockets.ClientConnection | None = None

    async def create_session(self) -> dict[str, Any]:
        response = await self.http.post("/sessions", json={"agent_name": "assistant", "metadata": {"client": "seed"}})
        assert response.status_code == 200, response.text
        session = response.json()
        assert SESSION_FIELDS <= set(session) and session["status"] == "active"
        return session

    async def connect(self, session_id: str) -> None:
        self.ws = await websockets.connect(self.ws_base + session_id)
        connected = await self.frame()
        assert (connected["type"], connected["session_id"]) == ("connected", session_id)

    async def frame(self) -> dict[str, Any]:
        assert self.ws is not None
        return json.loads(await self.ws.recv())

    async def send(self, frame: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps(frame))

    async def until(self, *types: str) -> list[dict[str, Any]]:
        """The frames up to the first of `types` (the seed's clients waited like this)."""
        frames: list[dict[str, Any]] = []
        while True:
            frame = await self.frame()
            frames.append(frame)
            if frame["type"] in types:
                return frames

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        await self.http.aclose()


@pytest.fixture
async def seed(system: System) -> Any:
    client = SeedClient(system)
    yield client
    await client.close()


async def test_a_seed_client_chats_over_the_socket_and_reads_the_history(seed: SeedClient) -> None:
    session = await seed.create_session()
    await seed.connect(session["session_id"])
    await seed.send({"type": "message", "content": "Tell me about event sourcing"})
    frames = await seed.until("final_answer", "error")
    answer = frames[-1]
    assert answer["type"] == "final_answer" and answer["is_final"] is True and answer["content"]
    tokens = "".join(f["content"] for f in frames if f["type"] == "token")
    assert tokens == answer["content"]  # a chat turn's tokens are its answer
    await seed.send({"type": "ping"})
    assert (await seed.until("pong"))[-1] == {"type": "pong"}
    history = (await seed.http.get(f"/sessions/{session['session_id']}/messages")).json()
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert all(MESSAGE_FIELDS <= set(m) for m in history)
    assert history[1]["content"] == answer["content"]


async def test_a_seed_client_uploads_a_file_and_confirms_its_deletion(seed: SeedClient) -> None:
    session = await seed.create_session()
    uploaded = await seed.http.post("/upload", files={"file": ("notes.txt", b"remember the milk", "text/plain")})
    assert uploaded.status_code == 200, uploaded.text
    stored = uploaded.json()
    assert {"filename", "stored_name", "content_type", "size", "download_url"} <= set(stored)
    assert (await seed.http.get(stored["download_url"].removeprefix("/api/v1/chat"))).content == b"remember the milk"
    await seed.connect(session["session_id"])
    await seed.send({"type": "message", "content": f"delete {stored['stored_name']}"})
    request = (await seed.until("confirmation_request"))[-1]["data"]
    assert {"confirmation_id", "command", "reason"} <= set(request)
    await seed.send({"type": "confirmation_reply", "confirmation_id": request["confirmation_id"], "approved": True})
    frames = await seed.until("final_answer", "error")
    results = [f["data"] for f in frames if f["type"] == "confirmation_result"]
    assert results and results[0]["confirmation_id"] == request["confirmation_id"] and results[0]["approved"] is True
    assert frames[-1]["type"] == "final_answer"
    assert (await seed.http.get(stored["download_url"].removeprefix("/api/v1/chat"))).status_code == 404


async def test_a_seed_client_answers_ask_human_by_its_top_level_request_id(seed: SeedClient) -> None:
    session = await seed.create_session()
    await seed.connect(session["session_id"])
    await seed.send({"type": "message", "content": "ask me for my name"})
    asked = (await seed.until("ask_human"))[-1]
    assert asked["question"] and asked["request_id"]  # where the seed put them
    await seed.send({"type": "reply", "request_id": asked["request_id"], "content": "Ada"})
    answer = (await seed.until("final_answer", "error"))[-1]
    assert answer["type"] == "final_answer" and "Ada" in answer["content"]


async def test_a_seed_client_holds_a_board_meeting_and_cancel_always_answers_cancelled(seed: SeedClient) -> None:
    session = await seed.create_session()
    await seed.connect(session["session_id"])
    await seed.send({"type": "message", "content": "@board rounds=1 Should we adopt a four-day week?"})
    frames = await seed.until("final_answer", "error")
    types = [f["type"] for f in frames]
    started = frames[types.index("board_started")]["data"]
    assert started["team_id"] and started["topic"] == "Should we adopt a four-day week?" and started["experts"]
    speeches = [f["data"] for f in frames if f["type"] == "expert_speech"]
    assert speeches and all(s["content"] and s["expert_name"] and s["round"] == 1 for s in speeches)
    chunks = [f["data"] for f in frames if f["type"] == "expert_speech_chunk"]
    assert {c["expert_name"] for c in chunks} == {s["expert_name"] for s in speeches}
    assert types.index("round_summary") < types.index("board_concluded") < types.index("final_answer")
    assert frames[-1]["content"].startswith("## Summary")
    await seed.send({"type": "cancel"})  # nothing runs now: the seed still answered `result`
    assert (await seed.until("result"))[-1]["data"]["status"] == "cancelled"
    history = (await seed.http.get(f"/sessions/{session['session_id']}/messages")).json()
    assert history[0]["content"] == "@board Should we adopt a four-day week?"  # as the seed stored it
    assert history[-1]["agent_name"] == "board_meeting"


async def test_a_seed_client_sends_over_rest_with_the_seeds_body(seed: SeedClient) -> None:
    session = await seed.create_session()
    response = await seed.http.post(
        f"/sessions/{session['session_id']}/messages", json={"content": "What is 6*7?", "role": "user"}
    )
    assert response.status_code == 200, response.text
    message = response.json()
    assert MESSAGE_FIELDS <= set(message) and message["role"] == "assistant" and "42" in message["content"]
    got = (await seed.http.get(f"/sessions/{session['session_id']}")).json()
    assert SESSION_FIELDS <= set(got)
    closed = await seed.http.delete(f"/sessions/{session['session_id']}")
    assert closed.status_code == 200
