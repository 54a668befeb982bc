"""Checkpoints: named positions that followers store outside a projection."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from projections import Checkpoints, create_engine, migrate


@pytest.fixture
async def checkpoints(fresh_database_url: str) -> AsyncIterator[Checkpoints]:
    engine: AsyncEngine = create_engine(fresh_database_url)
    await migrate(engine)
    yield Checkpoints(engine)
    await engine.dispose()


async def test_an_unknown_checkpoint_is_at_position_zero(checkpoints: Checkpoints) -> None:
    assert await checkpoints.get("nats_relay") == 0


async def test_set_stores_and_replaces_a_position_per_name(checkpoints: Checkpoints) -> None:
    await checkpoints.set("nats_relay", 10)
    await checkpoints.set("other", 3)
    assert await checkpoints.get("nats_relay") == 10
    await checkpoints.set("nats_relay", 42)
    assert (await checkpoints.get("nats_relay"), await checkpoints.get("other")) == (42, 3)
