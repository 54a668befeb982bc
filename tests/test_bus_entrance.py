"""The bus's entrances against a real nats-server: keys scoped to their session, limits checked on both sides."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from bus import Bus, CommandConsumer, ensure_command_stream, publish_command
from bus.commands import CommandRejected
from schemas import CreateSession, DecodeError, ErrorReply, SendMessage, SessionReady, Subjects, codec, limits


@pytest.fixture
async def bus(nats_url: str, subject_prefix: str) -> AsyncIterator[Bus]:
    bus = await Bus.connect(nats_url, name="test", subjects=Subjects(subject_prefix))
    yield bus
    await bus.close()


async def test_one_key_in_two_sessions_is_stored_twice_and_in_one_session_once(bus: Bus) -> None:
    await ensure_command_stream(bus)
    a = await publish_command(bus, "sess-a", SendMessage(content="hi", idempotency_key="same"))
    b = await publish_command(bus, "sess-b", SendMessage(content="hi", idempotency_key="same"))
    again = await publish_command(bus, "sess-a", SendMessage(content="hi", idempotency_key="same"))
    assert (a.duplicate, b.duplicate, again.duplicate) == (False, False, True)
    assert a.idempotency_key == b.idempotency_key == "same"  # the command keeps the plain key


async def test_publish_command_refuses_a_command_over_the_limits_before_publishing(bus: Bus) -> None:
    await ensure_command_stream(bus)
    with pytest.raises(CommandRejected, match="content is") as rejected:
        await publish_command(bus, "s1", SendMessage(content="x" * (limits.MAX_TEXT_BYTES + 1)))
    assert rejected.value.code == limits.TOO_LARGE
    info = await bus.nc.jetstream().stream_info(bus.subjects.cmd_stream)
    assert info.state.messages == 0


async def test_the_consumer_hands_a_raw_command_with_a_nul_as_a_decode_error(bus: Bus) -> None:
    layout = (await ensure_command_stream(bus, partitions=1)).current
    raw = json.dumps({"type": "send_message", "content": "a\u0000b"}).encode()
    await bus.nc.jetstream().publish(bus.subjects.session_cmd("s1"), raw)
    consumer = CommandConsumer(bus, layout, [0])
    await consumer.start()
    try:
        delivery = await asyncio.wait_for(consumer.__aiter__().__anext__(), 5)
        await delivery.term()
    finally:
        await consumer.stop()
    assert isinstance(delivery.command, DecodeError) and "U+0000" in str(delivery.command)


async def test_a_served_create_request_with_a_nul_in_its_metadata_gets_an_error_reply(bus: Bus) -> None:
    handled: list[CreateSession] = []

    async def handler(request: CreateSession) -> SessionReady:
        handled.append(request)
        return SessionReady(session_id="s1", agent_name=request.agent_name, position=1)

    await bus.serve(bus.subjects.sessions_create, codec.create_session, handler, queue="workers")
    request = CreateSession(metadata={"title": "a\x00"})
    reply = await bus.request(bus.subjects.sessions_create, request, codec.create_session_replies)
    assert isinstance(reply, ErrorReply) and reply.code == limits.INVALID_TEXT and handled == []
