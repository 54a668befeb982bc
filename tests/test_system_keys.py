"""Idempotency keys are scoped to their session: JetStream's stream-wide de-duplication must not join two sessions."""

from __future__ import annotations

import asyncio
import uuid

from tests.system import System


async def test_one_key_used_in_two_sessions_gets_both_messages_answered(system: System) -> None:
    first, second = await system.create_session(), await system.create_session()
    key = uuid.uuid4().hex
    async with system.http() as client:
        answers = await asyncio.gather(
            *(
                client.post(f"/sessions/{sid}/messages", json={"content": f"from {sid}", "idempotency_key": key})
                for sid in (first, second)
            )
        )
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    for sid, answer in zip((first, second), answers, strict=True):
        assert f'You said: "from {sid}"' in answer.json()["content"]
        assert [m["role"] for m in await system.messages(sid)] == ["user", "assistant"]


async def test_a_retry_with_the_same_key_in_the_same_session_is_still_one_message(
    system: System, session_id: str
) -> None:
    key = uuid.uuid4().hex
    async with system.http() as client:
        for _ in range(2):
            answer = await client.post(
                f"/sessions/{session_id}/messages", json={"content": "once", "idempotency_key": key}
            )
            assert answer.status_code == 200
    assert [m["role"] for m in await system.messages(session_id)] == ["user", "assistant"]
