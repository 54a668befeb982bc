"""Boards and teams that ended, as one worker's experts know them: their streams stop within a chunk."""

from __future__ import annotations

from collections import OrderedDict

from bus import Bus
from schemas.experts import WithdrawExperts

KIND = "expert_withdrawal"
"""The actor kind of the subject a withdrawal is published on (every worker subscribes, no queue group)."""


class Withdrawals:
    """The ids of the boards and teams withdrawn lately (the newest `limit`; an old one has no expert at work)."""

    def __init__(self, limit: int = 4096) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def add(self, owner_id: str) -> None:
        self._ids[owner_id] = None
        while len(self._ids) > self._limit:
            self._ids.popitem(last=False)

    def __contains__(self, owner_id: object) -> bool:
        return owner_id in self._ids


async def withdraw(bus: Bus, owner_id: str) -> None:
    """Tell every worker's experts that the board or team `owner_id` ended, so they stop streaming for it."""
    await bus.publish(bus.subjects.actor(KIND, owner_id), WithdrawExperts(owner_id=owner_id))
