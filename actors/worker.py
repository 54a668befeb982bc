"""The worker: hosts the actors, consumes session commands, answers creates, relays the log."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import structlog

from bus import Bus, CommandConsumer, TypedSubscription, ensure_command_stream
from projections import Checkpoints, Engine, EventLog, PartitionLeases, Projector
from schemas import CreateSession, ErrorReply, InvalidId, SessionReady, codec, validate_id
from schemas.agents import list_agents
from schemas.experts import WithdrawExperts, expert_requests, withdrawals

from .board import BoardActor
from .config import DEFAULT_CONFIG, Config, load_config
from .context import WorkerContext
from .directory import answer_agents
from .errors import is_outage
from .experts.actor import QUEUE as EXPERTS_QUEUE
from .experts.actor import ExpertActor, answer_experts
from .experts.withdrawals import KIND as WITHDRAWALS
from .history import HistoryServer
from .intake import CommandIntake
from .llm import Provider
from .llm.registry import build_providers, close_providers
from .relay import Relay
from .runtime import ActorHost
from .session import SessionActor
from .team.actor import TeamActor
from .turn import TurnActor

logger = structlog.get_logger("agentbus.worker")

LEASE_INTERVAL = 1.0
"""Seconds between attempts to take free partitions (e.g. those of a worker that died)."""
STOP_GRACE = 1.0
"""Seconds the work in flight may take to finish when the worker stops."""


class Worker:
    """Everything that runs actors, for the partitions this worker owns."""

    def __init__(
        self,
        bus: Bus,
        engine: Engine,
        provider: Provider,
        *,
        partitions: list[int] | None = None,
        default_model: str = "offline",
        idle_seconds: float = 60.0,
        ack_wait: float = 30.0,
        config: Config | None = None,
    ) -> None:
        self.bus = bus
        self.event_log = EventLog(engine)
        self.relay = Relay(self.event_log, Checkpoints(engine), bus)
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
        self._partitions = partitions
        self._ack_wait = ack_wait
        self.intake = CommandIntake(
            bus, self.host, self.event_log, ack_wait=ack_wait, work_timeout=config.session.work_timeout
        )
        self._available = 0
        """The command stream's partitions (0: unpartitioned, NATS < 2.10)."""
        self._leases = PartitionLeases(engine, bus.subjects.prefix)
        self._consumers: dict[int, tuple[CommandConsumer, asyncio.Task[None]]] = {}
        self.projector = Projector(engine, self.event_log)
        self.history = HistoryServer(bus, self.event_log)
        self.ready = asyncio.Event()
        """Set once the worker takes commands and answers creates, events requests and expert requests."""

    async def run(self) -> None:
        """Run until cancelled; then stop taking work and let JetStream redeliver the rest."""
        available = self._available = await ensure_command_stream(self.bus)
        # An unpartitioned stream (NATS < 2.10) is leased as one partition, 0.
        wanted = self._partitions or list(range(available)) or [0]
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
        self.relay.own(set(), of=available)
        background = [
            asyncio.create_task(_supervised("relay", self.relay.run), name="relay"),
            asyncio.create_task(_supervised("projector", self.projector.run), name="projector"),
            asyncio.create_task(self._take_withdrawals(withdrawn), name="withdrawals"),
        ]
        await self._rebalance(wanted, partitioned=available > 0)
        logger.info("worker_started", partitions=sorted(self._consumers))
        self.ready.set()
        try:
            while True:
                await asyncio.sleep(LEASE_INTERVAL)
                try:
                    await self._rebalance(wanted, partitioned=available > 0)
                except Exception as exc:
                    if not is_outage(exc):
                        raise
                    # Keep serving what we hold: if the lease connection died, another worker may take a
                    # partition over, and the event log's version check stops a second writer.
                    logger.warning("lease_renewal_failed", error=str(exc))
        finally:
            # Intake stops first; experts keep answering while the work in flight gets its grace.
            await creates.unsubscribe()
            await agents.unsubscribe()
            for partition in list(self._consumers):
                await self._release(partition)
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
            await close_providers(self.ctx.providers)
            await self.event_log.close()

    async def _take_withdrawals(self, withdrawn: TypedSubscription[WithdrawExperts]) -> None:
        async for message in withdrawn:
            self.ctx.withdrawals.add(message.owner_id)

    async def _rebalance(self, wanted: list[int], *, partitioned: bool) -> None:
        """Consume exactly the partitions whose lease this worker holds (taking free ones over)."""
        held = await self._leases.claim(wanted)
        self.relay.own(held, of=self._available)
        changed = held != set(self._consumers)
        for partition in sorted(held - set(self._consumers)):
            consumer = CommandConsumer(self.bus, [partition] if partitioned else None, ack_wait=self._ack_wait)
            await consumer.start()
            pump = asyncio.create_task(self.intake.take(consumer), name=f"partition-{partition}")
            self._consumers[partition] = (consumer, pump)
        for partition in sorted(set(self._consumers) - held):
            await self._release(partition)
        if changed:
            logger.info("partitions_owned", partitions=sorted(held))

    async def _release(self, partition: int) -> None:
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
        return await self.host.ask(SessionActor.kind, session_id, request)


async def _supervised(name: str, run: Callable[[], Awaitable[None]], backoff: float = 1.0) -> None:
    """Run a never-ending loop, restarting it after a crash (it resumes from its checkpoint)."""
    while True:
        try:
            await run()
        except Exception:
            logger.exception("background_task_crashed", task=name)
        await asyncio.sleep(backoff)
