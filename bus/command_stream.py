"""The command stream itself: created with the configured partitions, and re-partitioned while in use.

The partition count is stored with the stream, in its subject transform. A
change of it is a new layout (`schemas.layout.Layout`): the stream's transform
switches at once, so every command from then on is stored in the new layout,
and the stream's metadata names the old one as draining. Workers go on
consuming the old layout until each of its partitions has nothing pending or
in flight; only then does anyone consume the new one, so no command is
stranded and none overtakes an older one of its session. The worker that sees
the drain complete ends the change (`finish_change`).
"""

from __future__ import annotations

import re

import msgspec
import nats.js.errors
import structlog
from nats.js.api import StreamConfig, SubjectTransform

from schemas import Layout, Subjects

from .commands import DEFAULT_PARTITIONS, DUPLICATE_WINDOW_S
from .connection import Bus

logger = structlog.get_logger("agentbus.bus")

DRAINING = "agentbus_draining"
"""The stream metadata naming the layout still draining, as `<partitions>:<generation>`."""

_TRANSFORM = re.compile(r"\.part(\d*)\.\{\{partition\((\d+),")


class CommandLayouts(msgspec.Struct, frozen=True, kw_only=True):
    """The layout commands are stored in now, and the older one still draining (None: no change under way)."""

    current: Layout
    draining: Layout | None = None

    @property
    def active(self) -> Layout:
        """The layout workers consume: the draining one until it is empty, then the current one."""
        return self.draining or self.current


async def ensure_command_stream(bus: Bus, *, partitions: int = DEFAULT_PARTITIONS, replicas: int = 1) -> CommandLayouts:
    """Create the command stream under the bus's prefix, or update it in place; return its layouts.

    A stream of another partition count is switched to a new layout of
    `partitions` (the old one drains first, see the module), unless a change is
    still draining: then it keeps its layouts and the configured count is only
    logged. On a NATS server without subject transforms (< 2.10) the stream is
    unpartitioned (`Layout(0)`).
    """
    js = bus.nc.jetstream()
    try:
        existing = await js.stream_info(bus.subjects.cmd_stream)
    except nats.js.errors.NotFoundError:
        info = await js.add_stream(_config(bus.subjects, CommandLayouts(current=Layout(partitions)), replicas))
        return layouts_of(info.config)
    layouts = stored = layouts_of(existing.config)
    if layouts.current.partitions == 0:
        # Made by a server without transforms: partitioned as configured once the server can.
        layouts = CommandLayouts(current=Layout(partitions))
    elif layouts.current.partitions != partitions:
        if layouts.draining is None:
            old = layouts.current
            layouts = CommandLayouts(current=Layout(partitions, old.generation + 1), draining=old)
        else:
            logger.warning(
                "command_stream_repartitioning_deferred",
                configured=partitions,
                partitions=layouts.current.partitions,
                reason=f"the change from {layouts.draining.partitions} partitions is still draining",
            )
    info = await js.update_stream(_config(bus.subjects, layouts, replicas))
    if layouts.draining is not None and layouts.draining != stored.draining:
        logger.info("command_stream_repartitioning", partitions=partitions, draining=layouts.draining.partitions)
    if info.config.subject_transform is None:
        logger.warning("command_stream_unpartitioned", reason="the NATS server has no subject transforms (< 2.10)")
    return layouts_of(info.config)


async def read_layouts(bus: Bus) -> CommandLayouts:
    """The command stream's layouts as stored now."""
    info = await bus.nc.jetstream().stream_info(bus.subjects.cmd_stream)
    return layouts_of(info.config)


async def layout_drained(bus: Bus, layout: Layout) -> bool:
    """Whether every partition of `layout` has a consumer with nothing pending and nothing in flight."""
    infos = {info.name: info for info in await bus.nc.jetstream().consumers_info(bus.subjects.cmd_stream)}
    for partition in layout.all:
        info = infos.get(layout.consumer(partition))
        if info is None or (info.num_pending or 0) or (info.num_ack_pending or 0):
            return False
    return True


async def finish_change(bus: Bus, layouts: CommandLayouts) -> CommandLayouts:
    """End a drained change: the stream forgets the old layout and its consumers are deleted.

    Several workers may finish the same change at once; each step is idempotent.
    """
    js = bus.nc.jetstream()
    info = await js.stream_info(bus.subjects.cmd_stream)
    stored = layouts_of(info.config)
    if stored.draining is not None and stored.draining == layouts.draining:
        await js.update_stream(_config(bus.subjects, CommandLayouts(current=stored.current), info.config.num_replicas))
    if layouts.draining is not None:
        for partition in layouts.draining.all:
            try:
                await js.delete_consumer(bus.subjects.cmd_stream, layouts.draining.consumer(partition))
            except nats.js.errors.NotFoundError:
                pass
    return CommandLayouts(current=stored.current)


def layouts_of(config: StreamConfig) -> CommandLayouts:
    """Read the layouts from a command stream's configuration."""
    transform = config.subject_transform
    found = _TRANSFORM.search(transform.dest or "") if transform is not None else None
    if found is None:
        return CommandLayouts(current=Layout(0))
    current = Layout(int(found.group(2)), int(found.group(1) or 0))
    draining = (config.metadata or {}).get(DRAINING)
    if not draining:
        return CommandLayouts(current=current)
    old_partitions, _, old_generation = draining.partition(":")
    return CommandLayouts(current=current, draining=Layout(int(old_partitions), int(old_generation or 0)))


def _config(subjects: Subjects, layouts: CommandLayouts, replicas: int | None) -> StreamConfig:
    current = layouts.current
    token = current.stored_token
    draining = layouts.draining
    # No metadata at all when none is needed: servers before 2.10 know no such field.
    metadata = {DRAINING: f"{draining.partitions}:{draining.generation}"} if draining is not None else None
    return StreamConfig(
        name=subjects.cmd_stream,
        subjects=[subjects.all_session_cmds],
        subject_transform=SubjectTransform(
            src=subjects.all_session_cmds,
            dest=f"{subjects.prefix}.{token}.{{{{partition({current.partitions},1)}}}}.session.{{{{wildcard(1)}}}}.cmd",
        ),
        duplicate_window=DUPLICATE_WINDOW_S,
        max_age=7 * 24 * 3600,
        num_replicas=replicas or 1,
        metadata=metadata,
    )
