"""The worker: hosts the actors, consumes session commands, answers creates, relays the log."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import structlog

from bus import Bus, CommandConsumer, CommandDelivery, ensure_command_stream
from projections import Checkpoints, Engine, EventLog, EventLogError, PartitionLeases, Projector
from schemas import CommandRefused, CreateSession, DecodeError, ErrorReply, InvalidId, SessionReady, codec, validate_id
from schemas.experts import expert_requests

from .board import BoardActor, ExpertActor
from .board.experts import QUEUE as EXPERTS_QUEUE
from .board.experts import answer_experts
from .config import DEFAULT_CONFIG, Config, load_config
from .context import WorkerContext
from .errors import ActorError
from .llm import Provider
from .llm.registry import build_providers, close_providers
from .relay import Relay
from .runtime import ActorHost
from .session import Deliver, SessionActor
from .turn import TurnActor

logger = structlog.get_logger("agentbus.worker")

LEASE_INTERVAL = 1.0
"""Seconds between attempts to take free partitions (e.g. those of a worker that died)."""


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
        self.host.register(ExpertActor.kind, lambda actor_id, host: ExpertActor(actor_id, host, ctx))
        self._partitions = partitions
        self._ack_wait = ack_wait
        self._leases = PartitionLeases(engine, bus.subjects.prefix)
        self._consumers: dict[int, tuple[CommandConsumer, asyncio.Task[None]]] = {}
        self.projector = Projector(engine, self.event_log)
        self._in_flight: set[asyncio.Task[None]] = set()
        self.ready = asyncio.Event()
        """Set once the worker takes commands and answers creates and expert requests."""

    async def run(self) -> None:
        """Run until cancelled; then stop taking work and let JetStream redeliver the rest."""
        available = await ensure_command_stream(self.bus)
        # An unpartitioned stream (NATS < 2.10) is leased as one partition, 0.
        wanted = self._partitions or list(range(available)) or [0]
        creates = await self.bus.serve(
            self.bus.subjects.sessions_create, codec.create_session, self._create, queue="workers"
        )
        experts = await self.bus.serve(
            self.bus.subjects.all_actors(ExpertActor.kind),
            expert_requests,
            answer_experts(self.host),
            queue=EXPERTS_QUEUE,
            concurrent=True,
        )
        background = [
            asyncio.create_task(_supervised("relay", self.relay.run), name="relay"),
            asyncio.create_task(_supervised("projector", self.projector.run), name="projector"),
        ]
        await self._rebalance(wanted, partitioned=available > 0)
        logger.info("worker_started", partitions=sorted(self._consumers))
        self.ready.set()
        try:
            while True:
                await asyncio.sleep(LEASE_INTERVAL)
                await self._rebalance(wanted, partitioned=available > 0)
        finally:
            await creates.unsubscribe()
            await experts.unsubscribe()
            for partition in list(self._consumers):
                await self._release(partition)
            await self._leases.close()
            for task in [*background, *self._in_flight]:
                task.cancel()
            await asyncio.gather(*background, *self._in_flight, return_exceptions=True)
            await self.host.stop()
            await close_providers(self.ctx.providers)
            await self.event_log.close()

    async def _rebalance(self, wanted: list[int], *, partitioned: bool) -> None:
        """Consume exactly the partitions whose lease this worker holds (taking free ones over)."""
        held = await self._leases.claim(wanted)
        changed = held != set(self._consumers)
        for partition in sorted(held - set(self._consumers)):
            consumer = CommandConsumer(self.bus, [partition] if partitioned else None, ack_wait=self._ack_wait)
            await consumer.start()
            pump = asyncio.create_task(self._take(consumer), name=f"partition-{partition}")
            self._consumers[partition] = (consumer, pump)
        for partition in sorted(set(self._consumers) - held):
            await self._release(partition)
        if changed:
            logger.info("partitions_owned", partitions=sorted(held))

    async def _take(self, consumer: CommandConsumer) -> None:
        async for delivery in consumer:
            task = asyncio.create_task(self._process(delivery), name=f"command-{delivery.sequence}")
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

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

    async def _process(self, delivery: CommandDelivery) -> None:
        command = delivery.command
        structlog.contextvars.bind_contextvars(
            session_id=delivery.session_id,
            correlation_id=getattr(command, "idempotency_key", None) or f"cmd-{delivery.sequence}",
        )
        if isinstance(command, DecodeError):
            logger.warning("command_undecodable", error=str(command))
            refusal = CommandRefused(code="invalid_command", message=str(command))
            await self.bus.publish(self.bus.subjects.session_evt(delivery.session_id), refusal)
            await delivery.term()
            return
        try:
            outcome = await self.host.ask(SessionActor.kind, delivery.session_id, Deliver(command=command))
            if outcome is not None:
                await self._hold(delivery, outcome)
        except asyncio.CancelledError:
            # Stopping, or the actor passivated mid-turn: JetStream redelivers the
            # command and the re-activated actor resumes from the log.
            await asyncio.shield(delivery.nak(delay=1.0))
            raise
        except (ActorError, EventLogError) as exc:
            logger.warning("command_failed", error=str(exc))
            await delivery.nak(delay=1.0)
            return
        except Exception:  # a bug in one command must not stop the others; it is redelivered
            logger.exception("command_crashed")
            await delivery.nak(delay=5.0)
            return
        await delivery.ack()

    async def _hold(self, delivery: CommandDelivery, outcome: asyncio.Future[None]) -> None:
        """Wait for the command's work to be recorded, keeping JetStream from redelivering it."""
        while True:
            try:
                await asyncio.wait_for(asyncio.shield(outcome), self._ack_wait / 3)
                return
            except TimeoutError:
                await delivery.in_progress()


async def _supervised(name: str, run: Callable[[], Awaitable[None]], backoff: float = 1.0) -> None:
    """Run a never-ending loop, restarting it after a crash (it resumes from its checkpoint)."""
    while True:
        try:
            await run()
        except Exception:
            logger.exception("background_task_crashed", task=name)
        await asyncio.sleep(backoff)
