"""Which command partitions each live worker should own: an even share, moved as little as possible.

Every worker computes the same answer from the same list of live workers, so
no coordinator is needed: each takes its own share and hands over the rest.
"""

from __future__ import annotations

import hashlib


def share(member: int, members: list[int], partitions: int) -> set[int]:
    """The partitions (of `range(partitions)`) that `member` should own among the live `members`.

    Each member gets `partitions // len(members)` or one more. Partitions go
    to the member that ranks them highest (rendezvous hashing) while it has
    room, so a member that joins or leaves moves about `partitions / len(members)`
    of them, not a reshuffle of all. A member not in `members` owns nothing.
    """
    if member not in members:
        return set()
    return {partition for partition, owner in assignment(members, partitions).items() if owner == member}


def assignment(members: list[int], partitions: int) -> dict[int, int]:
    """The owner of every partition among `members` (none if there are no members)."""
    ordered = sorted(set(members))
    if not ordered:
        return {}
    base, extra = divmod(partitions, len(ordered))
    # The members that rank lowest get no extra partition; any fixed order would do, this one is stable.
    room = {member: base + (1 if index < extra else 0) for index, member in enumerate(ordered)}
    owners: dict[int, int] = {}
    for _, partition, member in sorted(
        ((_score(member, partition), partition, member) for member in ordered for partition in range(partitions)),
        reverse=True,
    ):
        if partition not in owners and room[member] > 0:
            owners[partition] = member
            room[member] -= 1
    return owners


def _score(member: int, partition: int) -> bytes:
    return hashlib.blake2b(f"{member}/{partition}".encode(), digest_size=8).digest()
