"""Each configured agent as an Agent2Agent agent, driven by the official SDK's client."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
from a2a.client import ClientConfig, create_client
from a2a.types import Message, Part, Role, SendMessageRequest, StreamResponse, TaskState

from gateway.a2a import session_of
from tests.system import System


def user_message(text: str, context_id: str = "") -> SendMessageRequest:
    message = Message(role=Role.ROLE_USER, parts=[Part(text=text)], message_id=uuid.uuid4().hex, context_id=context_id)
    return SendMessageRequest(message=message)


async def converse(
    system: System, text: str, context_id: str = "", headers: dict[str, str] | None = None
) -> list[StreamResponse]:
    async with httpx.AsyncClient(timeout=60, headers=headers) as http:
        client = await create_client(
            system.http_url + "/a2a/assistant", client_config=ClientConfig(streaming=True, httpx_client=http)
        )
        return [event async for event in client.send_message(user_message(text, context_id))]


def answer_of(events: list[StreamResponse]) -> str:
    artifact = [e.artifact_update for e in events if e.HasField("artifact_update")][-1]
    assert artifact.last_chunk
    return "".join(part.text for part in artifact.artifact.parts)


async def test_an_agent_s_card_names_its_endpoint_and_its_streaming(system: System) -> None:
    async with httpx.AsyncClient(base_url=system.http_url) as http:
        card = (await http.get("/a2a/assistant/.well-known/agent-card.json")).json()
        missing = await http.get("/a2a/nobody/.well-known/agent-card.json")
    assert card["name"] == "assistant" and card["capabilities"]["streaming"] is True
    assert card["supportedInterfaces"][0]["url"] == system.http_url + "/a2a/assistant"
    assert missing.status_code == 404 and missing.json()["code"] == "unknown_agent"


async def test_a_message_streams_its_answer_and_completes_the_task(system: System) -> None:
    events = await converse(system, "hello over a2a")
    updates = [e.artifact_update for e in events if e.HasField("artifact_update")]
    assert len(updates) > 1  # tokens streamed before the recorded answer
    assert answer_of(events).startswith('You said: "hello over a2a"')
    states = [e.status_update.status.state for e in events if e.HasField("status_update")]
    assert states[-1] == TaskState.TASK_STATE_COMPLETED


async def test_a_context_is_one_session_that_goes_on(system: System) -> None:
    first = await converse(system, "first")
    context_id = next(e.status_update.context_id for e in first if e.HasField("status_update"))
    second = await converse(system, "second", context_id)
    assert answer_of(second).startswith('You said: "second"')
    messages = await system.messages(session_of("assistant", context_id))
    assert [m["content"] for m in messages if m["role"] == "user"] == ["first", "second"]


async def test_an_agent_takes_the_credential_rest_takes(tmp_path: Path, system_env: dict[str, str]) -> None:
    system = System(tmp_path / "up", {**system_env, "AGENTBUS_API_KEY": "sesame"}).start()
    try:
        async with httpx.AsyncClient(base_url=system.http_url) as http:
            assert (await http.get("/a2a/assistant/.well-known/agent-card.json")).status_code == 401
        events = await converse(system, "with the key", headers={"X-API-Key": "sesame"})
        assert answer_of(events).startswith('You said: "with the key"')
    finally:
        assert system.stop() == 0
