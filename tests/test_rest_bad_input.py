"""Bad input over REST, through a real `agentbus up`: a clear 4xx every time, never a 5xx or the database's text.

Also the seed's bodies (nested `metadata`, `role`, the seed's execution modes),
which REST accepts while commands on the bus stay strict, and the idempotency
key in the 429 of a message refused for too many turns.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from schemas import DecodeError, codec, limits
from tests.conftest import new_database
from tests.system import System, delete_command_stream

BIGINT_PAST = 2**63
"""One more than PostgreSQL's bigint holds: what used to reach the database and come back as a 5xx."""

DATABASE_WORDS = ("asyncpg", "sqlalchemy", "bigint", "out of range for type", "invalid byte sequence", "\\u0000 cannot")


@pytest.fixture(scope="module")
async def database_url(postgres_url: str) -> AsyncIterator[str]:
    async with new_database(postgres_url) as url:
        yield url


@pytest.fixture(scope="module")
async def system(tmp_path_factory: pytest.TempPathFactory, nats_url: str, database_url: str) -> AsyncIterator[System]:
    """One `agentbus up` for the module; tokens 30 ms apart, so five long messages run at once."""
    prefix = "badin" + uuid.uuid4().hex[:8]
    env = {
        "AGENTBUS_NATS_URL": nats_url,
        "AGENTBUS_DATABASE_URL": database_url,
        "AGENTBUS_SUBJECT_PREFIX": prefix,
        "AGENTBUS_OFFLINE_DELAY": "0.03",
        "AGENTBUS_ANSWER_TIMEOUT": "20",
    }
    system = System(tmp_path_factory.mktemp("badinput") / "data", env).start()
    yield system
    assert system.stop() == 0
    await delete_command_stream(nats_url, prefix)


@pytest.fixture
async def session_id(system: System) -> str:
    return await system.create_session()


def assert_clear_4xx(response: httpx.Response, status: int, code: str) -> None:
    """`status` with a Problem body of `code`, and nothing the database said."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    assert not any(word in body["detail"].lower() for word in DATABASE_WORDS), body


@pytest.mark.parametrize("value", [BIGINT_PAST, 10**40, -1])
async def test_a_query_number_outside_postgres_bigint_gets_400_naming_the_parameter(
    system: System, session_id: str, value: int
) -> None:
    """`limit`, `offset`, `after` and `at` of 2^63 used to answer 500/503 with the database's complaint."""
    cases = [
        (f"/sessions/{session_id}/messages?limit={value}", "limit", "invalid_query"),
        (f"/sessions/{session_id}/messages?offset={value}", "offset", "invalid_query"),
        (f"/sessions/{session_id}/events?after={value}", "after", "invalid_query"),
        (f"/sessions/{session_id}/events?limit={value}", "limit", "invalid_query"),
        (f"/boards/{session_id}?at={value}", "at", "invalid_request"),
        (f"/teams/{session_id}?at={value}", "at", "invalid_request"),
    ]
    async with system.http() as client:
        for path, name, code in cases:
            response = await client.get(path)
            assert_clear_4xx(response, 400, code)
            assert name in response.json()["detail"], (path, response.text)
        ready = await client.post(f"/sessions/{session_id}/messages", json={"content": "still fine"})
    assert ready.status_code == 200, ready.text  # a bad number never marked the database as down


async def test_the_largest_bigint_is_a_valid_position_offset_and_limit(system: System, session_id: str) -> None:
    top = limits.MAX_POSITION
    async with system.http() as client:
        answers = [
            await client.get(f"/sessions/{session_id}/messages?limit={top}&offset={top}"),
            await client.get(f"/sessions/{session_id}/events?after={top}&limit={top}"),
            await client.get(f"/sessions/{session_id}/events?after=0&limit={top}"),
        ]
        board = await client.get(f"/boards/{session_id}?at={top}")
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].json() == [] and answers[1].json() == []
    assert [e["event"]["type"] for e in answers[2].json()] == ["session_created"]
    assert_clear_4xx(board, 404, "unknown_board")


def test_the_socket_s_after_is_checked_by_the_same_limit() -> None:
    """`limits.position` is what the socket's `?after=` calls: 2^63 is refused, 2^63 - 1 taken."""
    assert limits.position(str(limits.MAX_POSITION), "after") == limits.MAX_POSITION
    for text in (str(BIGINT_PAST), "-1", "soon", "9" * 5000):
        refusal = limits.position(text, "after")
        assert isinstance(refusal, limits.Refusal) and refusal.code == limits.INVALID_NUMBER
        assert "after" in refusal.message


async def test_a_nul_anywhere_in_a_body_gets_422_naming_the_field_and_nothing_is_stored(
    system: System, session_id: str
) -> None:
    creates = [
        ({"metadata": {"title": "a\u0000"}}, "metadata.title"),
        ({"metadata": {"ti\u0000tle": "a"}}, "metadata"),
        ({"metadata": {"user": {"name": "a\u0000"}}}, "metadata.user.name"),
        ({"metadata": {"tags": ["ok", "b\u0000"]}}, "metadata.tags.1"),
        ({"metadata": {"user": {"na\u0000me": 1}}}, "metadata.user"),
        ({"agent_name": "assist\u0000ant"}, "agent_name"),
        ({"session_id": "s\u0000"}, "session_id"),
    ]
    sends = [
        ({"content": "a\u0000b"}, "content"),
        ({"content": "ok", "model": "m\u0000"}, "model"),
        ({"content": "ok", "idempotency_key": "k\u0000"}, "idempotency_key"),
    ]
    async with system.http() as client:
        before = (await client.get("/sessions")).json()
        for body, field in creates:
            response = await client.post("/sessions", json=body)
            assert_clear_4xx(response, 422, limits.INVALID_TEXT)
            assert field in response.json()["detail"], (body, response.text)
        for body, field in sends:
            response = await client.post(f"/sessions/{session_id}/messages", json=body)
            assert_clear_4xx(response, 422, limits.INVALID_TEXT)
            assert field in response.json()["detail"], (body, response.text)
        after = (await client.get("/sessions")).json()
        history = (await client.get(f"/sessions/{session_id}/messages")).json()
    assert after == before and history == []


def nested(depth: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(depth):
        value = {"n": value}
    return value


def nested_text(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


async def test_deeply_nested_bodies_get_422_too_deep(system: System, session_id: str) -> None:
    """Nesting past the limit, and past the interpreter's recursion limit (which used to answer 500)."""
    async with system.http() as client:
        over_the_limit = await client.post("/sessions", json={"metadata": nested(limits.MAX_DEPTH)})
        at_the_limit = await client.post("/sessions", json={"metadata": {"n": nested(limits.MAX_DEPTH - 3)}})
        deep = [
            await client.post("/sessions", content=b'{"metadata":{"n":' + nested_text(100_000) + b"}}"),
            await client.post("/sessions", content=b'{"unknown":' + nested_text(100_000) + b"}"),
            await client.post("/sessions", content=b'{"metadata":' + b'{"a":' * 5000 + b"1" + b"}" * 5001),
            await client.post(f"/sessions/{session_id}/messages", content=b'{"content":"x","x":' + nested_text(10**5)),
        ]
    assert_clear_4xx(over_the_limit, 422, limits.TOO_DEEP)
    assert at_the_limit.status_code == 200, at_the_limit.text
    for response in deep[:3]:
        assert_clear_4xx(response, 422, limits.TOO_DEEP)
    assert deep[3].status_code == 422 and deep[3].json()["code"] in ("invalid_body", limits.TOO_DEEP)


async def chunks(size: int) -> AsyncIterator[bytes]:
    """A body of `size` bytes sent in pieces, with no content-length (chunked transfer)."""
    piece = b'{"content":"' + b"x" * (64 * 1024 - 12)
    yield piece
    sent = len(piece)
    while sent < size:
        yield b"x" * 64 * 1024
        sent += 64 * 1024
    yield b'"}'


async def test_bodies_over_the_cap_get_413_with_or_without_a_content_length(system: System, session_id: str) -> None:
    over = limits.MAX_BODY_BYTES + 1
    big = b'{"content":"' + b"x" * over + b'"}'
    async with system.http() as client:
        answers = [
            await client.post("/sessions", content=big),
            await client.post(f"/sessions/{session_id}/messages", content=big),
            await client.post("/sessions", content=chunks(over)),
            await client.post(f"/sessions/{session_id}/messages", content=chunks(over)),
        ]
    for response in answers:
        assert_clear_4xx(response, 413, limits.TOO_LARGE)


async def test_a_seed_client_s_create_body_with_nested_metadata_is_accepted(system: System) -> None:
    """The seed's `CreateSessionRequest` (`metadata: dict[str, Any]`): nested values come back as they were sent."""
    metadata = {"title": "t", "n": 1, "user": {"id": 7, "roles": ["admin"]}, "tags": ["a", "b"]}
    async with system.http() as client:
        created = await client.post("/sessions", json={"agent_name": "assistant", "metadata": metadata})
        with_null = await client.post("/sessions", json={"agent_name": "assistant", "metadata": None})
    assert created.status_code == 200, created.text
    assert created.json()["metadata"] == metadata
    assert with_null.status_code == 200 and with_null.json()["metadata"] == {}


@pytest.mark.parametrize("mode", [None, "react", "direct", "direct_chat", "skill_react", "rewoo"])
async def test_a_seed_client_s_send_body_is_accepted(system: System, session_id: str, mode: str | None) -> None:
    """The seed's `SendMessageRequest`: `content`, `role` "user", and its `execution_mode` names."""
    body = {"content": "hello seed", "role": "user", "execution_mode": mode}
    async with system.http() as client:
        response = await client.post(f"/sessions/{session_id}/messages", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "assistant" and "hello seed" in response.json()["content"]


async def test_fields_the_seed_never_had_are_still_refused_on_rest(system: System, session_id: str) -> None:
    async with system.http() as client:
        unknown = await client.post(f"/sessions/{session_id}/messages", json={"content": "hi", "colour": "red"})
        role = await client.post(f"/sessions/{session_id}/messages", json={"content": "hi", "role": "assistant"})
        mode = await client.post(f"/sessions/{session_id}/messages", json={"content": "hi", "execution_mode": "x"})
    for response in (unknown, role, mode):
        assert_clear_4xx(response, 422, "invalid_body")


def test_commands_on_the_bus_stay_strict() -> None:
    """The seed's extra fields are a REST courtesy: a `send_message` command with `role` is refused on the bus."""
    with pytest.raises(DecodeError):
        codec.session_commands.decode(b'{"type":"send_message","content":"hi","role":"user"}')
    with pytest.raises(DecodeError):
        codec.create_session.decode(b'{"type":"create_session","agent":"assistant"}')


async def test_a_fifth_concurrent_message_gets_429_naming_its_idempotency_key(system: System, session_id: str) -> None:
    """Four turns run at once; the one refused says which message it was, so the client knows what to resend."""
    keys = [f"turn-{i}-{uuid.uuid4().hex[:6]}" for i in range(5)]
    async with system.http() as client:

        async def send(key: str) -> httpx.Response:
            body = {"content": "count " + "word " * 60, "idempotency_key": key}
            return await client.post(f"/sessions/{session_id}/messages", json=body)

        answers = await asyncio.gather(*(send(key) for key in keys))
    refused = [(key, a) for key, a in zip(keys, answers, strict=True) if a.status_code == 429]
    assert len(refused) == 1, [a.text for a in answers]
    key, response = refused[0]
    assert response.json()["code"] == "too_many_turns" and response.json()["idempotency_key"] == key
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 429]
