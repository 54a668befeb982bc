"""What a client's session list needs: the agents to pick from, titles, renaming, and search."""

from __future__ import annotations

import json

import websockets

from tests.system import System, receive_until


async def say(system: System, session_id: str, content: str) -> None:
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": content}))
        await receive_until(ws, "final_answer", timeout=30)


async def test_the_agents_are_listed_for_a_picker(system: System) -> None:
    async with system.http() as client:
        response = await client.get("/agents")
    assert response.status_code == 200
    agents = {agent["name"]: agent for agent in response.json()}
    assert set(agents) == {"assistant", "chat"}
    assert agents["assistant"]["execution_mode"] == "react" and "calculator" in agents["assistant"]["tools"]
    assert agents["chat"]["execution_mode"] == "direct" and agents["chat"]["tools"] == []
    assert all(agent["description"] for agent in agents.values())


async def test_a_session_is_titled_by_its_first_message_until_renamed(system: System, session_id: str) -> None:
    await say(system, session_id, "Plan a trip to Lisbon\nwith two kids")
    await say(system, session_id, "and a second message")
    async with system.http() as client:
        assert (await client.get(f"/sessions/{session_id}")).json()["title"] == "Plan a trip to Lisbon"
        renamed = await client.patch(f"/sessions/{session_id}", json={"title": "  Lisbon   in May "})
        assert renamed.status_code == 200 and renamed.json()["title"] == "Lisbon in May"
        listed = {s["session_id"]: s for s in (await client.get("/sessions")).json()}
        assert listed[session_id]["title"] == "Lisbon in May"
        log = [e["event"] for e in (await client.get(f"/sessions/{session_id}/events")).json()]
    assert [e["title"] for e in log if e["type"] == "session_renamed"] == ["Lisbon in May"]


async def test_a_bad_rename_is_refused_and_changes_nothing(system: System, session_id: str) -> None:
    async with system.http() as client:
        for body in ({"title": "   "}, {"title": "x" * 201}, {"name": "no title"}):
            response = await client.patch(f"/sessions/{session_id}", json=body)
            assert response.status_code == 422, body
        assert (await client.patch("/sessions/nosuchsession", json={"title": "t"})).status_code == 404
        log = [e["event"]["type"] for e in (await client.get(f"/sessions/{session_id}/events")).json()]
    assert "session_renamed" not in log


async def test_search_finds_sessions_by_title_and_by_message(system: System) -> None:
    by_title, by_message, other = [await system.create_session() for _ in range(3)]
    await say(system, by_title, "Quarterly budget review")
    await say(system, by_message, "hello")
    await say(system, by_message, "what about the 50%_discount budget?")
    await say(system, other, "something else entirely")
    async with system.http() as client:

        async def found(q: str) -> set[str]:
            response = await client.get("/sessions", params={"q": q})
            assert response.status_code == 200
            return {s["session_id"] for s in response.json()}

        assert await found("BUDGET") == {by_title, by_message}
        assert await found("quarterly") == {by_title}
        assert await found("50%_d") == {by_message}
        assert await found("%") == {by_message}  # a literal percent sign, not a wildcard
        assert await found("nothing like this") == set()
        assert (await client.get("/sessions", params={"q": "a\x00b"})).status_code == 400
