"""The tenant of a database: the one subject prefix whose sessions it holds.

Tenants (subject prefixes) never share a database. Its relay checkpoints, its
projector's checkpoint and lock, its partition leases and its read models are
named without the prefix, so two prefixes on one database would share them:
each would skip the other's events, or relay them on its own subjects. The
first process that opens a database claims it for its prefix; any later one
with another prefix is refused at once, before it reads or writes anything.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ._db import driver_errors
from .errors import TenantMismatch
from .tables import tenant


async def claim_tenant(engine: AsyncEngine, prefix: str) -> None:
    """Claim the (migrated) database for `prefix` unless claimed; `TenantMismatch` if it belongs to another."""
    with driver_errors("claim the database for its subject prefix"):
        async with engine.begin() as conn:
            await conn.execute(insert(tenant).values(subject_prefix=prefix).on_conflict_do_nothing())
            owner = await conn.scalar(select(tenant.c.subject_prefix))
    if owner != prefix:
        raise TenantMismatch(str(owner), prefix)
