"""Named positions in the log, for followers that keep their progress outside a projection."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ._db import driver_errors
from .tables import checkpoints


class Checkpoints:
    """Read and store how far a follower (e.g. the NATS relay) got; at-least-once by design.

    A follower stores a position after handling the events up to it, so after
    a crash it handles some events again, never skips one.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, name: str) -> int:
        """Return the stored position of `name` (0 if none was stored)."""
        with driver_errors("read checkpoint"):
            async with self._engine.connect() as conn:
                position = await conn.scalar(select(checkpoints.c.position).where(checkpoints.c.name == name))
        return position or 0

    async def set(self, name: str, position: int) -> None:
        """Store `position` for `name`, replacing what was there."""
        upsert = insert(checkpoints).values(name=name, position=position)
        upsert = upsert.on_conflict_do_update(index_elements=[checkpoints.c.name], set_={"position": position})
        with driver_errors("store checkpoint"):
            async with self._engine.begin() as conn:
                await conn.execute(upsert)

    async def advance(self, name: str, position: int) -> None:
        """Store `position` for `name` unless a larger one is stored: the checkpoint never moves backwards.

        Two followers that briefly both believe they own a checkpoint (a lease
        taken over) can then only ever move it forward.
        """
        upsert = insert(checkpoints).values(name=name, position=position)
        upsert = upsert.on_conflict_do_update(
            index_elements=[checkpoints.c.name], set_={"position": func.greatest(checkpoints.c.position, position)}
        )
        with driver_errors("advance checkpoint"):
            async with self._engine.begin() as conn:
                await conn.execute(upsert)
