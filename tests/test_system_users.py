"""Sessions belong to their creator: another user finds nothing there, exactly as where no session exists."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
import websockets

from tests.system import System, receive_until
from tests.users import ENV, as_service, as_user, token


@pytest.fixture
def system_env(system_env: dict[str, str]) -> dict[str, str]:
    """The `agentbus up` of these tests verifies their tokens and takes their API key."""
    return {**system_env, **ENV}


def _as_if_absent(response: httpx.Response, session_id: str, absent_id: str) -> tuple[int, str]:
    """A response with the session's id put where the absent id was: what it must equal for a foreign session."""
    return response.status_code, response.text.replace(absent_id, session_id)


async def test_a_user_reads_and_writes_only_their_own_sessions(system: System) -> None:
    async with as_user(system, "ada") as ada, as_user(system, "bob") as bob:
        created = await ada.post("/sessions", json={})
        assert created.status_code == 200 and created.json()["owner"] == "ada"
        mine = created.json()["session_id"]
        theirs = (await bob.post("/sessions", json={})).json()["session_id"]
        assert [s["session_id"] for s in (await ada.get("/sessions")).json()] == [mine]
        assert [s["session_id"] for s in (await bob.get("/sessions")).json()] == [theirs]
        absent = uuid.uuid4().hex
        for method, path, body in [
            ("GET", "/sessions/{}", None),
            ("GET", "/sessions/{}/messages", None),
            ("GET", "/sessions/{}/events?after=0", None),
            ("POST", "/sessions/{}/messages", {"content": "hello", "idempotency_key": "k"}),
            ("PATCH", "/sessions/{}", {"title": "mine now"}),
            ("DELETE", "/sessions/{}", None),
        ]:
            foreign = await bob.request(method, path.format(mine), json=body)
            nothing = await bob.request(method, path.format(absent), json=body)
            assert (foreign.status_code, foreign.text) == _as_if_absent(nothing, mine, absent), (method, path)
        # ada's session is untouched: open, not renamed, and nothing was said in it.
        untouched = (await ada.get(f"/sessions/{mine}")).json()
        assert untouched["status"] == "active" and untouched.get("title") is None
        assert (await ada.get(f"/sessions/{mine}/messages")).json() == []


async def test_a_socket_on_another_users_session_is_answered_as_one_on_no_session(system: System) -> None:
    async with as_user(system, "ada") as ada:
        mine = (await ada.post("/sessions", json={})).json()["session_id"]
    absent = uuid.uuid4().hex
    answers = []
    for session_id in (mine, absent):
        async with websockets.connect(system.ws_base + f"{session_id}?token={token('bob')}") as ws:
            frame = await ws.recv()
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None
        answers.append((str(frame).replace(session_id, "<id>"), closed.value.rcvd.code, closed.value.rcvd.reason))
    assert answers[0] == answers[1]
    assert json.loads(answers[0][0])["data"]["code"] == "unknown_session"
    # Its owner chats on it with their token.
    async with websockets.connect(system.ws_base + f"{mine}?token={token('ada')}") as ws:
        assert json.loads(await ws.recv())["type"] == "connected"
        await ws.send(json.dumps({"type": "message", "content": "hello"}))
        assert "hello" in (await receive_until(ws, "final_answer"))[-1]["content"]


async def test_admins_and_the_api_key_see_every_session_and_nobody_gets_in_without_a_credential(
    system: System,
) -> None:
    async with as_user(system, "ada") as ada:
        mine = (await ada.post("/sessions", json={})).json()["session_id"]
    async with as_user(system, "root", role="admin") as admin, as_service(system) as service:
        assert mine in [s["session_id"] for s in (await admin.get("/sessions")).json()]
        assert (await service.get(f"/sessions/{mine}")).status_code == 200
        made = (await service.post("/sessions", json={})).json()
        assert made.get("owner") is None  # a service's sessions belong to no user
    async with httpx.AsyncClient(base_url=system.http_url + "/api/v1/chat") as nobody:
        assert (await nobody.get("/sessions")).status_code == 401
        forged = {"Authorization": "Bearer " + token("ada")[:-4] + "AAAA"}
        assert (await nobody.get("/sessions", headers=forged)).status_code == 401
    async with websockets.connect(system.ws_base + mine) as ws:
        assert json.loads(await ws.recv())["data"]["code"] == "unauthorized"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001


async def test_another_users_team_is_answered_as_one_that_does_not_exist(system: System) -> None:
    async with as_user(system, "ada") as ada:
        mine = (await ada.post("/sessions", json={})).json()["session_id"]
    async with websockets.connect(system.ws_base + f"{mine}?token={token('ada')}") as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": "@team Write a short release note"}))
        frames = await receive_until(ws, "final_answer")
    team_id = next(f["data"]["team_id"] for f in frames if f["type"] == "team_formed")
    absent = uuid.uuid4().hex
    async with as_user(system, "ada") as ada, as_user(system, "bob") as bob:
        assert (await ada.get(f"/teams/{team_id}")).status_code == 200
        foreign, nothing = await bob.get(f"/teams/{team_id}"), await bob.get(f"/teams/{absent}")
    assert (foreign.status_code, foreign.text) == _as_if_absent(nothing, team_id, absent)
