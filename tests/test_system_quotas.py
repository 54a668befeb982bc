"""Quotas enforced before each model call: the seed's `quota exceeded` frame, admins exempt, no overrun across
workers, and no call while the quota store does not answer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
import websockets
from sqlalchemy import text

from projections import create_engine
from schemas import partition_of
from tests.system import System
from tests.test_system_workers import until_spread
from tests.users import ENV, as_service, as_user, token

User = tuple[str, str, tuple[str, ...]]
ADA: User = ("ada", "user", ("research",))
BOB: User = ("bob", "user", ("sales",))
ROOT: User = ("root", "admin", ("research",))


@pytest.fixture
def system_env(system_env: dict[str, str]) -> dict[str, str]:
    """The `agentbus up` of these tests verifies their tokens and takes their API key."""
    return {**system_env, **ENV}


def admin(system: System) -> httpx.AsyncClient:
    client = as_service(system)
    client.base_url = system.http_url + "/api/v1/admin"
    return client


async def set_quota(system: System, department: str, quota_type: str, period: str, limit: int | None) -> dict:
    async with admin(system) as client:
        await client.post("/departments", json={"department_id": department})
        answer = await client.put(f"/departments/{department}/quotas/{quota_type}/{period}", json={"limit": limit})
        answer.raise_for_status()
        return answer.json()


async def new_session(system: System, who: User) -> str:
    async with as_user(system, *who) as client:
        return (await client.post("/sessions", json={})).json()["session_id"]


def socket(system: System, session_id: str, who: User) -> websockets.connect:
    return websockets.connect(system.ws_base + f"{session_id}?token={token(*who)}")


async def say(ws: websockets.ClientConnection, content: str) -> dict:
    """Send a message; return the frame that ends its turn: the final answer, or the recorded error ending it."""
    await ws.send(json.dumps({"type": "message", "content": content}))
    async with asyncio.timeout(20):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "final_answer" or (frame["type"] == "error" and "position" in frame):
                return frame


async def test_one_department_runs_out_mid_conversation_the_other_chats_on_and_a_raised_quota_lets_it_go_on(
    system: System,
) -> None:
    await set_quota(system, "research", "tokens", "day", 100)
    await set_quota(system, "sales", "tokens", "day", 100_000)
    ada_session, bob_session = await new_session(system, ADA), await new_session(system, BOB)
    async with socket(system, ada_session, ADA) as ada, socket(system, bob_session, BOB) as bob:
        await ada.recv(), await bob.recv()  # connected
        answered = 0
        while (frame := await say(ada, f"tell me about topic {answered}"))["type"] == "final_answer":
            answered += 1
            assert answered < 20, "the quota never ran out"
        assert answered >= 1  # mid-conversation: it had answers before it ran out
        assert frame["data"]["message"] == "quota exceeded" and frame["data"]["code"] == "quota_exceeded"
        info = frame["data"]["quota_info"]
        assert {k: info[k] for k in ("department_id", "quota_type", "period", "limit")} == {
            "department_id": "research",
            "quota_type": "tokens",
            "period": "day",
            "limit": 100,
        }
        assert info["current"] >= 100
        # The other department's user keeps chatting meanwhile; ada's next message is refused the same way.
        assert (await say(bob, "still there?"))["type"] == "final_answer"
        assert (await say(ada, "and now?"))["data"]["code"] == "quota_exceeded"
        # An admin of that department is exempt.
        root_session = await new_session(system, ROOT)
        async with socket(system, root_session, ROOT) as root:
            await root.recv()
            assert (await say(root, "admins are not counted"))["type"] == "final_answer"
        # The admin raises the quota: ada goes on.
        raised = await set_quota(system, "research", "tokens", "day", 100_000)
        assert raised["quotas"][0]["limit"] == 100_000
        assert (await say(ada, "can we go on?"))["type"] == "final_answer"
    # The refusals are recorded: the turn's failure with its quota, and the message's end.
    async with as_user(system, *ADA) as client:
        events = (await client.get(f"/sessions/{ada_session}/events?after=0")).json()
        failed = [e["event"] for e in events if e["event"]["type"] == "turn_failed"]
        assert len(failed) == 2 and all(e["quota_info"]["department_id"] == "research" for e in failed)
        ended = [e["event"] for e in events if e["event"]["type"] == "message_failed"]
        assert [e["code"] for e in ended] == ["quota_exceeded", "quota_exceeded"]
        # Each counted call is recorded with the departments it was counted against, and projected.
        charged = [e["event"]["charged_to"] for e in events if e["event"]["type"] == "model_called"]
        assert charged and all(c == ["research"] for c in charged)
    async with admin(system) as client:
        research = (await client.get("/departments/research")).json()
    assert research["usage"]["requests_today"] == len(charged)


async def test_over_quota_a_rest_message_is_answered_429_with_the_quota(system: System) -> None:
    await set_quota(system, "research", "requests", "month", 1)
    session_id = await new_session(system, ADA)
    async with as_user(system, *ADA) as client:
        assert (await client.post(f"/sessions/{session_id}/messages", json={"content": "hi"})).status_code == 200
        refused = await client.post(f"/sessions/{session_id}/messages", json={"content": "hi again"})
    assert refused.status_code == 429
    assert refused.json()["code"] == "quota_exceeded"
    assert refused.json()["quota_info"] == {
        "department_id": "research",
        "quota_type": "requests",
        "period": "month",
        "limit": 1,
        "current": 1,
    }


async def test_concurrent_turns_on_two_workers_overrun_a_token_quota_by_at_most_one_call(
    tmp_path: Path, system_env: dict[str, str]
) -> None:
    """40 messages at once from 8 sessions spread over both workers' partitions, against 300 tokens a day."""
    env = {**system_env, **ENV, "AGENTBUS_OFFLINE_DELAY": "0.01"}
    system = System(tmp_path / "up", env).start(args=("--workers", "2"))
    try:
        owning = await until_spread(system, 2)
        await set_quota(system, "research", "tokens", "day", 300)
        sessions: list[str] = []
        for shares in owning.values():  # sessions in each worker's partitions
            while sum(partition_of(s, 8) in shares for s in sessions) < 4:
                candidate = await new_session(system, ADA)
                if partition_of(candidate, 8) in shares:
                    sessions.append(candidate)
        async with as_user(system, *ADA) as client:

            async def send(session_id: str, n: int) -> int:
                body = {"content": f"question {n}", "idempotency_key": f"k{n}"}
                return (await client.post(f"/sessions/{session_id}/messages", json=body)).status_code

            statuses = await asyncio.gather(*(send(sessions[n % 8], n) for n in range(40)))
            calls = [
                event["event"]
                for session_id in sessions
                for event in (await client.get(f"/sessions/{session_id}/events?after=0")).json()
                if event["event"]["type"] == "model_called"
            ]
        assert set(statuses) == {200, 429}
        taken = sum(call["prompt_tokens"] + call["completion_tokens"] for call in calls)
        largest = max(call["prompt_tokens"] + call["completion_tokens"] for call in calls)
        assert taken <= 300 + largest
        async with admin(system) as client:
            [tokens] = (await client.get("/departments/research")).json()["quotas"]
        assert tokens["current"] == taken  # every call settled to what it took
    finally:
        assert system.stop() == 0


async def say_while_the_quota_store_is_locked(system: System, session_id: str, content: str) -> dict:
    """`say` while another transaction holds the quota counters for longer than the store's deadline."""
    engine = create_engine(system.env["AGENTBUS_DATABASE_URL"])
    try:
        async with engine.connect() as conn, conn.begin():
            await conn.execute(text("LOCK TABLE quota_counters IN ACCESS EXCLUSIVE MODE"))
            async with socket(system, session_id, ADA) as ws:
                await ws.recv()
                return await say(ws, content)
    finally:
        await engine.dispose()


async def test_a_quota_store_that_does_not_answer_refuses_the_call_with_a_clear_error(
    system: System,
) -> None:
    """The counters locked by another transaction for longer than the store's deadline: no model call is made."""
    await set_quota(system, "research", "requests", "day", 10)
    session_id = await new_session(system, ADA)
    frame = await say_while_the_quota_store_is_locked(system, session_id, "hello")
    assert frame["type"] == "error" and frame["data"]["code"] == "quota_unavailable"
    assert "the model was not called" in frame["data"]["message"]
    async with as_user(system, *ADA) as client:
        events = (await client.get(f"/sessions/{session_id}/events?after=0")).json()
    assert not [e for e in events if e["event"]["type"] == "model_called"]


async def test_a_team_whose_members_run_out_of_quota_ends_with_the_seeds_frame(system: System) -> None:
    """Two model calls a day: the lead plans, a member works, and the next call ends the team."""
    await set_quota(system, "research", "requests", "day", 2)
    session_id = await new_session(system, ADA)
    async with socket(system, session_id, ADA) as ws:
        await ws.recv()
        frame = await say(ws, "@team Build a user login feature with email and password")
    assert frame["type"] == "error" and frame["data"]["message"] == "quota exceeded"
    assert frame["data"]["code"] == "quota_exceeded"
    assert frame["data"]["quota_info"] == {
        "department_id": "research",
        "quota_type": "requests",
        "period": "day",
        "limit": 2,
        "current": 2,
    }
    async with as_user(system, *ADA) as client:
        events = (await client.get(f"/sessions/{session_id}/events?after=0")).json()
    [ended] = [e["event"] for e in events if e["event"]["type"] == "team_dissolved"]
    assert ended["status"] == "failed" and ended["quota_info"]["limit"] == 2
    assert [e["event"]["code"] for e in events if e["event"]["type"] == "message_failed"] == ["quota_exceeded"]


async def test_a_teams_model_calls_are_counted_against_the_callers_department_and_projected(system: System) -> None:
    await set_quota(system, "research", "requests", "day", 1000)
    session_id = await new_session(system, ADA)
    async with socket(system, session_id, ADA) as ws:
        await ws.recv()
        assert (await say(ws, "@team Write a short release note"))["type"] == "final_answer"
    async with as_user(system, *ADA) as client:
        events = (await client.get(f"/sessions/{session_id}/events?after=0")).json()
    counted = [e["event"] for e in events if e["event"].get("charged_to") == ["research"]]
    assert {e["type"] for e in counted} >= {"team_formed", "expert_result", "team_synthesis"}
    async with admin(system) as client:
        research = (await client.get("/departments/research")).json()
    assert research["usage"]["requests_today"] == len(counted)
    assert research["quotas"][0]["current"] == len(counted)  # each call reserved one request


async def test_a_team_ends_with_a_clear_error_when_the_quota_store_does_not_answer(system: System) -> None:
    await set_quota(system, "research", "requests", "day", 10)
    session_id = await new_session(system, ADA)
    frame = await say_while_the_quota_store_is_locked(system, session_id, "@team Write a short release note")
    assert frame["type"] == "error" and frame["data"]["code"] == "team_failed"
    assert "the model was not called" in frame["data"]["reason"]


async def test_a_board_whose_experts_run_out_of_quota_ends_with_the_seed_frame_and_counts_what_it_spoke(
    system: System,
) -> None:
    # Room for a few speeches of the offline model, not for a whole board.
    await set_quota(system, "research", "requests", "day", 3)
    session_id = await new_session(system, ADA)
    async with socket(system, session_id, ADA) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": "@board rounds=2 Should we rewrite billing?"}))
        async with asyncio.timeout(60):
            while (frame := json.loads(await ws.recv()))["type"] != "error" or "position" not in frame:
                assert frame["type"] != "final_answer", "the board concluded over its quota"
    assert frame["data"]["message"] == "quota exceeded" and frame["data"]["code"] == "quota_exceeded"
    assert frame["data"]["quota_info"] == {
        "department_id": "research", "quota_type": "requests", "period": "day", "limit": 3, "current": 3,
    }  # fmt: skip
    async with as_user(system, *ADA) as client:
        events = [e["event"] for e in (await client.get(f"/sessions/{session_id}/events")).json()]
        assert [e["type"] for e in events].count("expert_speech") == 3
        failed = next(e for e in events if e["type"] == "board_failed")
        assert failed["quota_info"]["department_id"] == "research"
    async with admin(system) as client:
        usage = (await client.get("/departments/research")).json()["usage"]
    assert usage["requests_today"] == 3  # the three speeches, charged to ada's department
