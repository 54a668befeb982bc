"""The worker: hosts the actors, consumes session commands, answers creates, relays the log."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from functools import partial

import structlog

from bus import Bus, CommandConsumer, TypedSubscription, ensure_command_stream
from bus.command_stream import CommandLayouts, finish_change, layout_drained, read_layouts
from projections import Checkpoints, Engine, EventLog, LeasesLost, PartitionLeases, Projector
from schemas import CreateSession, ErrorReply, InvalidId, Layout, SessionReady, codec, validate_id
from schemas.agents import list_agents
from schemas.experts import WithdrawExperts, expert_requests, withdrawals

from .board import BoardActor
from .config import DEFAULT_CONFIG, Config, load_config
from .context import WorkerContext
from .directory import answer_agents
from .experts.actor import QUEUE as EXPERTS_QUEUE
from .experts.actor import ExpertActor, answer_experts
from .experts.withdrawals import KIND as WITHDRAWALS
from .history import HistoryServer
from .intake import CommandIntake
from .llm import Provider
from .llm.registry import build_providers, close_providers
from .placement import share
from .relay import CHECKPOINT, Relay
from .retention import run_retention
from .runtime import ActorHost
from .session import SessionActor
from .team.actor import TeamActor
from .turn import TurnActor

logger = structlog.get_logger("agentbus.worker")

STOP_GRACE = 1.0
"""Seconds the work in flight may take to finish when the worker stops, or when it hands a partition over."""


class Worker:
    """Everything that runs actors, for the partitions this worker owns (`leases` says which: PostgreSQL
    advisory locks unless given)."""

    def __init__(
        self,
        bus: Bus,
        engine: Engine,
        provider: Provider,
        *,
        default_model: str = "offline",
        idle_seconds: float = 60.0,
        ack_wait: float = 30.0,
        config: Config | None = None,
        leases: PartitionLeases | None = None,
    ) -> None:
        self.bus = bus
        self._engine = engine
        self.event_log = EventLog(engine)
        self.relay = Relay(self.event_log, Checkpoints(engine), bus, on_erased=self._stop_erased)
        config = config or load_config(DEFAULT_CONFIG)
        self.ctx = WorkerContext(
            bus=bus,
            event_log=self.event_log,
            provider=provider,
            relayed=self.relay.wait_for,
            default_model=default_model,
            config=config,
            providers=build_providers(config, provider),
        )
        self.host = ActorHost(idle_seconds=idle_seconds)
        ctx = self.ctx
        self.host.register(SessionActor.kind, lambda actor_id, host: SessionActor(actor_id, host, ctx))
        self.host.register(TurnActor.kind, lambda actor_id, host: TurnActor(actor_id, host, ctx))
        self.host.register(BoardActor.kind, lambda actor_id, host: BoardActor(actor_id, host, ctx))
        self.host.register(TeamActor.kind, lambda actor_id, host: TeamActor(actor_id, host, ctx))
        self.host.register(ExpertActor.kind, lambda actor_id, host: ExpertActor(actor_id, host, ctx))
        self._ack_wait = ack_wait
        self.intake = CommandIntake(
            bus, self.host, self.event_log, ack_wait=ack_wait, work_timeout=config.session.work_timeout
        )
        self._layout = Layout(0)
        """The layout of the command stream this worker consumes (the draining one while a change drains)."""
        self._leases = leases or PartitionLeases(
            engine, bus.subjects.prefix, failover_seconds=config.cluster.failover_seconds
        )
        self._consumers: dict[int, tuple[CommandConsumer, asyncio.Task[None]]] = {}
        self._owned: set[int] = set()
        """The partitions last reported as owned."""
        self.projector = Projector(engine, self.event_log)
        self.history = HistoryServer(bus, self.event_log)
        self.ready = asyncio.Event()
        """Set once the worker takes commands and answers creates, events requests and expert requests."""

    async def run(self) -> None:
        """Run until cancelled; then stop taking work and let JetStream redeliver the rest."""
        cluster = self.ctx.config.cluster
        layouts = await ensure_command_stream(self.bus, partitions=cluster.partitions, replicas=cluster.replicas)
        self._layout = layouts.active
        self._leases.use(self._layout)
        creates = await self.bus.serve(
            self.bus.subjects.sessions_create, codec.create_session, self._create, queue="workers"
        )
        agents = await self.bus.serve(
            self.bus.subjects.agents_list, list_agents, answer_agents(self.ctx.config), queue="workers"
        )
        await self.history.start()
        withdrawn = await self.bus.subscribe(self.bus.subjects.all_actors(WITHDRAWALS), withdrawals)
        experts = await self.bus.serve(
            self.bus.subjects.all_actors(ExpertActor.kind),
            expert_requests,
            answer_experts(self.host),
            queue=EXPERTS_QUEUE,
            concurrent=True,
        )
        # The relay follows the leases: nothing until this worker holds partitions.
        self.relay.own(set(), of=self._layout)
        background = [
            asyncio.create_task(_supervised("relay", self.relay.run), name="relay"),
            asyncio.create_task(_supervised("projector", self.projector.run), name="projector"),
            asyncio.create_task(self._take_withdrawals(withdrawn), name="withdrawals"),
        ]
        retention = self.ctx.config.retention
        if retention.closed_sessions_days is not None:
            sweeps = partial(run_retention, self._engine, retention.closed_sessions_days, retention.sweep_interval)
            background.append(asyncio.create_task(_supervised("retention", sweeps), name="retention"))
        await self._rebalance()
        logger.info("worker_started", member=self._leases.member, partitions=sorted(self._consumers))
        self.ready.set()
        try:
            while True:
                await asyncio.sleep(cluster.rebalance_interval)
                # Either may fail, e.g. while JetStream has no leader for a moment (a NATS node was lost):
                # keep serving what we hold and look again at the next interval; a partition half taken
                # is taken then.
                try:
                    await self._follow_layout()
                except Exception:
                    logger.exception("layout_check_failed")
                try:
                    await self._rebalance()
                except Exception:
                    logger.exception("rebalance_failed")
        finally:
            # Intake stops first; experts keep answering while the work in flight gets its grace.
            await creates.unsubscribe()
            await agents.unsubscribe()
            for partition in list(self._consumers):
                await self._stop_consuming(partition)
            # What has not finished within the grace is cut without recording anything final:
            # JetStream redelivers its command, and it resumes from its log at the next start.
            await self.intake.stop(STOP_GRACE)
            await experts.unsubscribe()
            await self.history.stop()
            await withdrawn.close()
            await self._leases.close()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self.host.stop()
            await self.ctx.mcp.close()
            await close_providers(self.ctx.providers)
            await self.event_log.close()

    async def _follow_layout(self) -> None:
        """Consume the layout the stream says: the draining one until it is empty, then the new one.

        The first worker to find the old layout drained starts the new
        layout's relay checkpoints where the old ones had all got to (so no
        event goes unpublished; a few are published again) and ends the change.
        """
        layouts = await read_layouts(self.bus)
        if layouts.draining is not None and await layout_drained(self.bus, layouts.draining):
            await self._carry_checkpoints(layouts)
            layouts = await finish_change(self.bus, layouts)
            logger.info("command_stream_repartitioned", partitions=layouts.current.partitions)
        if layouts.active == self._layout:
            return
        for partition in sorted(self._consumers):
            await self._hand_over(partition, grace=STOP_GRACE)
        for partition in sorted(self._leases.held):
            await self._leases.release(partition)
        self._layout = layouts.active
        self._leases.use(self._layout)
        self._owned = set()  # the same numbers in the new layout are other partitions: say what is owned anew
        logger.info("command_layout_followed", partitions=self._layout.partitions, generation=self._layout.generation)

    async def _carry_checkpoints(self, layouts: CommandLayouts) -> None:
        assert layouts.draining is not None
        checkpoints = Checkpoints(self._engine)
        old = [await checkpoints.get(layouts.draining.checkpoint(n)) for n in layouts.draining.all]
        start = min(old, default=0) or await checkpoints.get(CHECKPOINT)
        for partition in layouts.current.all:
            await checkpoints.set(layouts.current.checkpoint(partition), start)

    async def _take_withdrawals(self, withdrawn: TypedSubscription[WithdrawExperts]) -> None:
        async for message in withdrawn:
            self.ctx.withdrawals.add(message.owner_id)

    async def _rebalance(self) -> None:
        """Own this worker's share of the partitions among the live workers: hand over the rest, take the share.

        A partition handed over is released only once its work was let go, so
        its next owner (which keeps trying every `rebalance_interval`) never
        runs beside it. If the lease connection fails, every lease went with
        it: the worker stops taking commands until it holds leases again.
        """
        try:
            members = await self._leases.members()
            # A lease connection replaced since the last look (the database restarted) holds nothing
            # yet: stop what we consume without a lease, and claim it again below.
            for partition in sorted(set(self._consumers) - self._leases.held):
                await self._stop_consuming(partition)
            # An unpartitioned stream (NATS < 2.10) is leased as one partition, 0.
            wanted = share(self._leases.member, members, len(self._layout.all))
            for partition in sorted(set(self._consumers) - wanted):
                await self._hand_over(partition, grace=STOP_GRACE)
                await self._leases.release(partition)
            held = await self._leases.claim(sorted(wanted - set(self._consumers)))
        except LeasesLost:
            # Stop taking commands, but let the ones taken go on retrying in place: most often the
            # database itself is down (nobody can take over), and cutting them would let later
            # commands of a session overtake them once they are redelivered. If another worker does
            # take over meanwhile, the event log's version check keeps a single writer.
            for partition in sorted(self._consumers):
                await self._stop_consuming(partition)
            held = set()
            members = []
        for partition in sorted(held - set(self._consumers)):
            consumer = CommandConsumer(self.bus, self._layout, [partition], ack_wait=self._ack_wait)
            await consumer.start()
            pump = asyncio.create_task(self.intake.take(consumer), name=f"partition-{partition}")
            self._consumers[partition] = (consumer, pump)
        self.relay.own(held, of=self._layout)
        if held != self._owned:
            self._owned = held
            logger.info(
                "partitions_owned",
                member=self._leases.member,
                pid=os.getpid(),
                partitions=sorted(held),
                generation=self._layout.generation,
                workers=len(members),
            )

    async def _hand_over(self, partition: int, *, grace: float) -> None:
        """Stop taking `partition`'s commands and let its sessions go (work cut after `grace`, actors stopped)."""
        started = asyncio.get_running_loop().time()
        await self._stop_consuming(partition)

        def in_partition(session_id: str) -> bool:
            return self._layout.partition(session_id) == partition

        handed = await self.intake.hand_back(in_partition, grace)
        stopped = await self.host.stop_sessions(in_partition)
        elapsed = asyncio.get_running_loop().time() - started
        logger.info(
            "partition_handed_over",
            partition=partition,
            sessions=len(handed),
            actors=stopped,
            seconds=round(elapsed, 3),
        )

    async def _stop_consuming(self, partition: int) -> None:
        consumer, pump = self._consumers.pop(partition)
        pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)
        await consumer.stop()

    async def _create(self, request: CreateSession) -> SessionReady | ErrorReply:
        session_id = request.session_id or uuid.uuid4().hex
        try:
            validate_id(session_id)
        except InvalidId as exc:
            return ErrorReply(code="invalid_session_id", message=str(exc))
        if request.agent_name not in self.ctx.config.agents:
            return ErrorReply(code="unknown_agent", message=f"agent {request.agent_name!r} not found")
        structlog.contextvars.bind_contextvars(session_id=session_id)
        ready = await self.host.ask(SessionActor.kind, session_id, request)
        if self._layout.partition(session_id) not in self._consumers:
            # Any worker answers a create; the session's commands go to its partition's owner, so
            # a copy kept here would only go stale (and lose a version check when it next wrote).
            await self.host.stop_sessions(lambda active: active == session_id)
        return ready

    async def _stop_erased(self, session_id: str) -> None:
        """Stop the actors of an erased session (the relay tells, as it relays the tombstone): work in flight is cut
        now, and a command still held finds a session that does not exist."""
        stopped = await self.host.stop_sessions(lambda active: active == session_id)
        logger.info("erased_session_stopped", session_id=session_id, actors=stopped)


async def _supervised(name: str, run: Callable[[], Awaitable[None]], backoff: float = 1.0) -> None:
    """Run a never-ending loop, restarting it after a crash (it resumes from its checkpoint)."""
    while True:
        try:
            await run()
        except Exception:
            logger.exception("background_task_crashed", task=name)
        await asyncio.sleep(backoff)
