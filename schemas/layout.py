"""How the command stream spreads sessions over partitions, and the names each layout gives its parts.

A layout is `partitions` partitions in a `generation`: the first layout of a
stream is generation 0, and each change of the partition count makes the
next one. Every generation stores its commands under subjects, and names its
consumers, leases and relay checkpoints, of its own, so while the commands of
the old layout drain, those of the new one wait apart and nothing of the two
mixes. Generation 0 keeps the names agentbus has always used.
"""

from __future__ import annotations

import re

import msgspec

from .subjects import partition_of

_CONSUMER = re.compile(r"workers(?:-g(\d+))?(?:-p(\d+))?")


class Layout(msgspec.Struct, frozen=True):
    """`partitions` command partitions (0: an unpartitioned stream, NATS < 2.10) in generation `generation`."""

    partitions: int
    generation: int = 0

    def partition(self, session_id: str) -> int:
        """The partition of a session's commands in this layout (0 on an unpartitioned stream)."""
        return partition_of(session_id, self.partitions)

    @property
    def all(self) -> range:
        """Every partition (one, 0, on an unpartitioned stream: it is consumed and leased as one)."""
        return range(self.partitions or 1)

    @property
    def stored_token(self) -> str:
        """The subject token under which this layout stores commands: `part`, then `part<generation>`."""
        return "part" if self.generation == 0 else f"part{self.generation}"

    def consumer(self, partition: int) -> str:
        """The durable consumer of one partition."""
        if self.partitions <= 0:
            return "workers"
        return f"workers-p{partition}" if self.generation == 0 else f"workers-g{self.generation}-p{partition}"

    def lease(self, partition: int) -> str:
        """The name of one partition's lease (unique within a prefix)."""
        return str(partition) if self.generation == 0 else f"g{self.generation}/{partition}"

    def checkpoint(self, partition: int) -> str:
        """The relay's checkpoint of one partition."""
        if self.partitions <= 0:
            return "nats_relay"
        return f"nats_relay.p{partition}" if self.generation == 0 else f"nats_relay.g{self.generation}.p{partition}"


def checkpoint_of_consumer(consumer: str) -> str | None:
    """The relay checkpoint that goes with a command consumer's name (None: not a worker's consumer)."""
    found = _CONSUMER.fullmatch(consumer)
    if found is None:
        return None
    generation, partition = found.groups()
    if partition is None:
        return "nats_relay" if generation is None else None
    return Layout(int(partition) + 1, int(generation or 0)).checkpoint(int(partition))
