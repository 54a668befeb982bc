"""The bus against a real nats-server: typed request/reply, the command stream, partitions."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from bus import (
    Bus,
    BusError,
    CommandConsumer,
    CommandLayouts,
    RequestFailed,
    ensure_command_stream,
    free_port,
    nats_servers,
    publish_command,
)
from bus.command_stream import finish_change, layout_drained, read_layouts
from schemas import (
    CreateSession,
    DecodeError,
    ErrorReply,
    Layout,
    SendMessage,
    SessionReady,
    Subjects,
    codec,
    partition_of,
)


@pytest.fixture
async def bus(nats_url: str, subject_prefix: str) -> AsyncIterator[Bus]:
    bus = await Bus.connect(nats_url, name="test", subjects=Subjects(subject_prefix))
    yield bus
    await bus.close()


async def next_delivery(consumer: CommandConsumer, timeout: float = 5.0):
    iterator = consumer.__aiter__()
    return await asyncio.wait_for(iterator.__anext__(), timeout)


def test_a_nats_url_list_is_split_into_servers_and_an_empty_entry_is_refused() -> None:
    assert nats_servers(" nats://127.0.0.1:4301 ,nats://127.0.0.1:4302") == [
        "nats://127.0.0.1:4301",
        "nats://127.0.0.1:4302",
    ]
    assert nats_servers("nats://127.0.0.1:4301") == ["nats://127.0.0.1:4301"]
    with pytest.raises(BusError, match="empty entry"):
        nats_servers("nats://127.0.0.1:4301,,nats://127.0.0.1:4302")


async def test_a_connection_given_a_url_list_gets_past_a_server_that_refuses_it(nats_url: str) -> None:
    """With one URL of the list refusing connections, `Bus.connect` connects to a live one (whichever it tries first)."""
    refusing = f"nats://127.0.0.1:{free_port()}"
    async with asyncio.timeout(10):
        bus = await Bus.connect(f"{refusing},{nats_url}", name="test-url-list")
    try:
        assert bus.connected
        assert bus.nc.connected_url is not None
        assert bus.nc.connected_url.netloc in {urlsplit(url).netloc for url in nats_servers(nats_url)}
        await bus.flush()
    finally:
        await bus.close()


async def test_a_typed_request_gets_the_typed_reply_of_its_server(bus: Bus) -> None:
    async def handler(request: CreateSession) -> SessionReady:
        return SessionReady(session_id=request.session_id or "new", agent_name=request.agent_name, position=7)

    await bus.serve(bus.subjects.sessions_create, codec.create_session, handler, queue="workers")
    reply = await bus.request(
        bus.subjects.sessions_create, CreateSession(session_id="s1"), codec.create_session_replies
    )
    assert reply == SessionReady(session_id="s1", agent_name="assistant", position=7)


async def test_garbage_sent_to_a_server_gets_an_error_reply_and_the_server_keeps_serving(bus: Bus) -> None:
    async def handler(request: CreateSession) -> SessionReady:
        return SessionReady(session_id="ok", agent_name=request.agent_name, position=1)

    await bus.serve(bus.subjects.sessions_create, codec.create_session, handler, queue="workers")
    raw = await bus.nc.request(bus.subjects.sessions_create, b"{not json", timeout=2)
    reply = codec.create_session_replies.decode(raw.data)
    assert isinstance(reply, ErrorReply) and reply.code == "invalid_message"
    assert "malformed" in reply.message
    again = await bus.request(bus.subjects.sessions_create, CreateSession(), codec.create_session_replies)
    assert isinstance(again, SessionReady)


async def test_a_failing_handler_answers_with_an_internal_error_instead_of_a_timeout(bus: Bus) -> None:
    async def handler(request: CreateSession) -> SessionReady:
        raise RuntimeError("boom")

    await bus.serve(bus.subjects.sessions_create, codec.create_session, handler, queue="workers")
    reply = await bus.request(bus.subjects.sessions_create, CreateSession(), codec.create_session_replies)
    assert isinstance(reply, ErrorReply) and reply.code == "internal" and "boom" in reply.message


async def test_a_request_nobody_serves_fails_clearly(bus: Bus) -> None:
    with pytest.raises(RequestFailed, match="no responders"):
        await bus.request(bus.subjects.sessions_create, CreateSession(), codec.create_session_replies, timeout=1)


async def test_publishing_a_command_twice_with_one_key_stores_it_once(bus: Bus) -> None:
    await ensure_command_stream(bus)
    first = await publish_command(bus, "s1", SendMessage(content="hi", idempotency_key="k1"))
    second = await publish_command(bus, "s1", SendMessage(content="hi", idempotency_key="k1"))
    assert not first.duplicate and second.duplicate and first.sequence == second.sequence


async def test_a_message_without_a_key_gets_one_that_travels_with_it(bus: Bus) -> None:
    layout = (await ensure_command_stream(bus, partitions=2)).current
    ack = await publish_command(bus, "s1", SendMessage(content="hi"))
    assert ack.idempotency_key
    consumer = CommandConsumer(bus, layout, list(layout.all))
    await consumer.start()
    delivery = await next_delivery(consumer)
    assert isinstance(delivery.command, SendMessage) and delivery.command.idempotency_key == ack.idempotency_key
    await delivery.ack()
    await consumer.stop()


async def test_commands_of_one_session_arrive_in_order_on_exactly_one_partition(bus: Bus) -> None:
    layout = (await ensure_command_stream(bus, partitions=4)).current
    for i in range(20):
        await publish_command(bus, "sess-a", SendMessage(content=str(i), idempotency_key=f"a{i}"))
    # A NATS older than 2.10 cannot partition: then one consumer takes the whole stream.
    seen: dict[int, list[str]] = {}
    for index in layout.all:
        consumer = CommandConsumer(bus, layout, [index])
        await consumer.start()
        try:
            while True:
                delivery = await next_delivery(consumer, timeout=0.8)
                assert isinstance(delivery.command, SendMessage)
                seen.setdefault(index, []).append(delivery.command.content)
                await delivery.ack()
        except TimeoutError:
            pass
        finally:
            await consumer.stop()
    assert len(seen) == 1
    assert next(iter(seen.values())) == [str(i) for i in range(20)]


async def test_an_undecodable_command_is_delivered_as_a_decode_error(bus: Bus) -> None:
    layout = (await ensure_command_stream(bus, partitions=1)).current
    await bus.nc.jetstream().publish(bus.subjects.session_cmd("s9"), b'{"type":"send_message"}')
    consumer = CommandConsumer(bus, layout, [0])
    await consumer.start()
    delivery = await next_delivery(consumer)
    assert delivery.session_id == "s9"
    assert isinstance(delivery.command, DecodeError) and "content" in str(delivery.command)
    await delivery.term()
    await consumer.stop()


async def test_an_unacked_command_is_redelivered(bus: Bus) -> None:
    layout = (await ensure_command_stream(bus, partitions=1)).current
    await publish_command(bus, "s1", SendMessage(content="again", idempotency_key="r1"))
    consumer = CommandConsumer(bus, layout, [0], ack_wait=1.0)
    await consumer.start()
    first = await next_delivery(consumer)
    second = await next_delivery(consumer, timeout=10)
    assert second.sequence == first.sequence and second.num_delivered == 2
    await second.ack()
    await consumer.stop()


async def test_partition_of_computes_the_partition_the_server_stores_a_session_command_under(bus: Bus) -> None:
    available = (await ensure_command_stream(bus, partitions=8)).current.partitions
    js = bus.nc.jetstream()
    for length in range(1, 41):
        session_id = uuid.uuid4().hex[: length % 32 + 1] + "-x"[: length % 2]
        ack = await publish_command(bus, session_id, SendMessage(content="where am I?"))
        stored = await js.get_msg(bus.subjects.cmd_stream, ack.sequence)
        # Stored as <prefix>.part.<n>.session.<sid>.cmd, or unpartitioned on a NATS older than 2.10.
        expected = bus.subjects.partitioned_cmd(partition_of(session_id, 8)).replace("*", session_id)
        assert stored.subject == (expected if available else bus.subjects.session_cmd(session_id))


async def test_a_new_partition_count_switches_the_stream_to_a_new_layout_while_the_old_one_drains(bus: Bus) -> None:
    first = await ensure_command_stream(bus, partitions=4)
    if first.current.partitions == 0:
        pytest.skip("this NATS server cannot partition (< 2.10)")
    before = await publish_command(bus, "s1", SendMessage(content="before"))
    changed = await ensure_command_stream(bus, partitions=6)
    after = await publish_command(bus, "s1", SendMessage(content="after"))
    assert changed == CommandLayouts(current=Layout(6, 1), draining=Layout(4, 0))
    assert changed.active == Layout(4, 0)  # consumed until it has drained
    # Another count asked for while the change drains is not started on top of it.
    assert await ensure_command_stream(bus, partitions=8) == changed
    js = bus.nc.jetstream()
    subjects = [(await js.get_msg(bus.subjects.cmd_stream, ack.sequence)).subject for ack in (before, after)]
    assert subjects == [
        bus.subjects.partitioned_cmd(partition_of("s1", 4)).replace("*", "s1"),
        bus.subjects.partitioned_cmd(partition_of("s1", 6), "part1").replace("*", "s1"),
    ]

    assert not await layout_drained(bus, changed.draining)  # no consumer has taken "before" yet
    old = CommandConsumer(bus, Layout(4), list(Layout(4).all))
    await old.start()
    delivery = await next_delivery(old)
    assert isinstance(delivery.command, SendMessage) and delivery.command.content == "before"
    assert not await layout_drained(bus, changed.draining)  # taken, not finished
    await delivery.ack()
    await old.stop()
    # The ack is not acknowledged itself: JetStream counts it a moment later (polled, as workers do).
    async with asyncio.timeout(10):
        while not await layout_drained(bus, changed.draining):
            await asyncio.sleep(0.05)

    assert await finish_change(bus, changed) == CommandLayouts(current=Layout(6, 1))
    assert await read_layouts(bus) == CommandLayouts(current=Layout(6, 1))
    assert [info.name for info in await js.consumers_info(bus.subjects.cmd_stream)] == []
