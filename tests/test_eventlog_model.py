"""The log against a simple in-memory model: generated appends with right and wrong versions, and retries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from projections import ConcurrencyError, DuplicateEventError, EventLog, NewEvent
from schemas.envelope import RecordedEvent
from schemas.events import UserMessage


@dataclass
class Model:
    """What the log should hold: event ids per stream, and every id in commit order."""

    streams: dict[str, list[str]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    batches: list[tuple[str, list[NewEvent]]] = field(default_factory=list)

    def version(self, stream: str) -> int:
        return len(self.streams.get(stream, []))


# An operation: ("append", stream, size, version mode) | ("retry", which earlier batch) | ("partial", which batch)
appends = st.tuples(
    st.just("append"), st.sampled_from("abc"), st.integers(1, 3), st.sampled_from(["right", "wrong", "none"])
)
retries = st.tuples(st.sampled_from(["retry", "partial"]), st.integers(0, 50))
operations = st.lists(st.one_of(appends, retries), min_size=1, max_size=25)


def said(prefix: str) -> NewEvent:
    return NewEvent(
        event=UserMessage(message_id=uuid.uuid4().hex, content=prefix, idempotency_key="k"), session_id=prefix
    )


async def check(log: EventLog, model: Model, op: tuple, prefix: str) -> None:  # type: ignore[type-arg]
    if op[0] == "append":
        _, name, size, mode = op
        stream = prefix + name
        actual = model.version(stream)
        expected = {"right": actual, "wrong": actual + 1 if actual == 0 else actual - 1, "none": None}[mode]
        batch = [said(prefix) for _ in range(size)]
        if mode == "wrong":
            with pytest.raises(ConcurrencyError) as raised:
                await log.append(stream, batch, expected)
            assert (raised.value.expected, raised.value.actual) == (expected, actual)
            return
        recorded = await log.append(stream, batch, expected)
        assert [r.version for r in recorded] == list(range(actual + 1, actual + size + 1))
        model.streams.setdefault(stream, []).extend(new.event_id for new in batch)
        model.order.extend(new.event_id for new in batch)
        model.batches.append((stream, batch))
        return
    kind, index = op
    if not model.batches:
        return
    stream, batch = model.batches[index % len(model.batches)]
    if kind == "retry":
        recorded = await log.append(stream, batch, 0)
        assert [r.event_id for r in recorded] == [new.event_id for new in batch]
    else:
        with pytest.raises(DuplicateEventError):
            await log.append(stream, [*batch, said(prefix)], None)


def ids(recorded: list[RecordedEvent]) -> list[str]:
    return [r.event_id for r in recorded]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
async def test_log_behaves_like_the_in_memory_model(engine: AsyncEngine, ops: list[tuple]) -> None:  # type: ignore[type-arg]
    """Each example writes under its own stream prefix, so examples share one database."""
    log = EventLog(engine, page_size=4)
    prefix = uuid.uuid4().hex[:8] + "-"
    model = Model()
    start = await log.last_position()
    try:
        for op in ops:
            await check(log, model, op, prefix)
        for name in "abc":
            stream = prefix + name
            assert ids([r async for r in log.iter_stream(stream)]) == model.streams.get(stream, [])
            assert await log.stream_version(stream) == model.version(stream)
        committed = await log.read_all(start, limit=10_000)
        assert ids(committed) == model.order
        assert [r.position for r in committed] == sorted({r.position for r in committed})
        assert ids([r async for r in log.iter_session(prefix)]) == model.order
    finally:
        await log.close()
