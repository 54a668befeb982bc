"""The worker: hosts the actors, consumes session commands, answers creates, relays the log."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import structlog

from bus import Bus, BusError, CommandConsumer, CommandDelivery, ensure_command_stream
from projections import Checkpoints, Engine, EventLog, PartitionLeases, Projector
from schemas import (
    CommandRefused,
    CreateSession,
    DecodeError,
    ErrorReply,
    InvalidId,
    SendMessage,
    SessionReady,
    codec,
    validate_id,
)
from schemas.experts import expert_requests

from .board import BoardActor, ExpertActor
from .board.experts import QUEUE as EXPERTS_QUEUE
from .board.experts import answer_experts
from .config import DEFAULT_CONFIG, Config, load_config
from .context import WorkerContext
from .errors import is_outage
from .llm import Provider
from .llm.registry import build_providers, close_providers
from .relay import Relay
from .runtime import ActorHost
from .session import Abandon, Deliver, SessionActor
from .turn import TurnActor

logger = structlog.get_logger("agentbus.worker")

LEASE_INTERVAL = 1.0
"""Seconds between attempts to take free partitions (e.g. those of a worker that died)."""
STOP_GRACE = 1.0
"""Seconds the work in flight may take to finish when the worker stops."""
COMMAND_ATTEMPTS = 3
"""Tries of a command that fails by itself (not an outage) before it is refused for good."""
MAX_DELIVERIES = 20
"""Deliveries of one command (each a worker that died holding it) before it is refused for good."""
RETRY_BACKOFF = 0.2
MAX_BACKOFF = 5.0
"""Seconds between retries of a command during an outage: doubling from RETRY_BACKOFF up to this."""


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
        self._work_timeout = config.session.work_timeout
        self._lanes: dict[str, list[CommandDelivery]] = {}
        self._available = 0
        """The command stream's partitions (0: unpartitioned, NATS < 2.10)."""
        self._leases = PartitionLeases(engine, bus.subjects.prefix)
        self._consumers: dict[int, tuple[CommandConsumer, asyncio.Task[None]]] = {}
        self.projector = Projector(engine, self.event_log)
        self._in_flight: set[asyncio.Task[None]] = set()
        self.ready = asyncio.Event()
        """Set once the worker takes commands and answers creates and expert requests."""

    async def run(self) -> None:
        """Run until cancelled; then stop taking work and let JetStream redeliver the rest."""
        available = self._available = await ensure_command_stream(self.bus)
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
        # The relay follows the leases: nothing until this worker holds partitions.
        self.relay.own(set(), of=available)
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
            for partition in list(self._consumers):
                await self._release(partition)
            if self._in_flight:
                # What has not finished by then is cut without recording anything final: JetStream
                # redelivers its command, and it resumes from its log at the next start.
                await asyncio.wait(self._in_flight, timeout=STOP_GRACE)
            await experts.unsubscribe()
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
        self.relay.own(held, of=self._available)
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
        """Hand each delivery to its session's lane: one session's commands are accepted one at a time, in order."""
        async for delivery in consumer:
            lane = self._lanes.get(delivery.session_id)
            if lane is None:
                lane = self._lanes[delivery.session_id] = []
                task = asyncio.create_task(
                    self._run_lane(delivery.session_id, lane), name=f"lane-{delivery.session_id}"
                )
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            lane.append(delivery)

    async def _run_lane(self, session_id: str, lane: list[CommandDelivery]) -> None:
        try:
            while lane:
                await self._accept(lane[0])
                lane.pop(0)
        finally:
            # Deliveries still in the lane (we are stopping) are redelivered by JetStream.
            if self._lanes.get(session_id) is lane:
                del self._lanes[session_id]

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

    async def _accept(self, delivery: CommandDelivery) -> None:
        """Have the session accept one command, retrying in place so that the session's order holds.

        An outage is retried for as long as it lasts (the delivery kept alive
        with `in_progress`); a command that fails by itself is refused after
        `COMMAND_ATTEMPTS` tries, or after `MAX_DELIVERIES` deliveries (it keeps
        killing workers), and terminated so that it is never redelivered.
        """
        command = delivery.command
        structlog.contextvars.bind_contextvars(
            session_id=delivery.session_id,
            correlation_id=getattr(command, "idempotency_key", None) or f"cmd-{delivery.sequence}",
        )
        if isinstance(command, DecodeError):
            await self._refuse(delivery, "invalid_command", str(command))
            return
        if delivery.num_delivered > MAX_DELIVERIES:
            await self._refuse(delivery, "command_failed", f"gave up after {MAX_DELIVERIES} deliveries")
            return
        failures = 0
        backoff = RETRY_BACKOFF
        while True:
            try:
                outcome = await self.host.ask(SessionActor.kind, delivery.session_id, Deliver(command=command))
                break
            except Exception as exc:
                if not is_outage(exc):
                    failures += 1
                    logger.exception("command_failed", attempt=failures)
                    if failures >= COMMAND_ATTEMPTS:
                        await self._refuse(delivery, "command_failed", f"the command failed: {type(exc).__name__}")
                        return
                elif backoff == RETRY_BACKOFF:
                    logger.warning("command_waiting_for_services", error=str(exc))
                await _quietly(delivery.in_progress())
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
        if outcome is None:
            await _quietly(delivery.ack())
            return
        hold = asyncio.create_task(self._hold(delivery, outcome), name=f"hold-{delivery.sequence}")
        self._in_flight.add(hold)
        hold.add_done_callback(self._in_flight.discard)

    async def _refuse(self, delivery: CommandDelivery, code: str, reason: str) -> None:
        """Tell the sender a command is refused for good, and terminate it."""
        logger.warning("command_refused", code=code, reason=reason, sequence=delivery.sequence)
        refusal = CommandRefused(
            code=code, message=reason, idempotency_key=getattr(delivery.command, "idempotency_key", None)
        )
        await _quietly(self.bus.publish(self.bus.subjects.session_evt(delivery.session_id), refusal))
        await _quietly(delivery.term())

    async def _hold(self, delivery: CommandDelivery, outcome: asyncio.Future[None]) -> None:
        """Keep the command until its work is recorded, asserting the work again every few seconds.

        Each assertion restarts a turn or board that died (it resumes from its
        log) and is a no-op for one at work. Past `work_timeout` the session
        gives the work up and records its failure, so no command is held for ever.
        """
        deadline = asyncio.get_running_loop().time() + self._work_timeout
        command = delivery.command
        assert not isinstance(command, DecodeError)
        while True:
            try:
                await asyncio.wait_for(asyncio.shield(outcome), self._ack_wait / 3)
                await _quietly(delivery.ack())
                return
            except TimeoutError:
                pass
            except asyncio.CancelledError:
                if not outcome.cancelled() or _being_cancelled():
                    await _quietly(delivery.nak(delay=1.0))  # stopping: redelivered, resumed from the log
                    raise
                # The session passivated or failed: assert the work again below.
            await _quietly(delivery.in_progress())
            try:
                if asyncio.get_running_loop().time() > deadline and isinstance(command, SendMessage):
                    reason = f"no answer within {self._work_timeout:.0f} s"
                    key = command.idempotency_key
                    await self.host.ask(SessionActor.kind, delivery.session_id, Abandon(key=key, reason=reason))
                renewed = await self.host.ask(SessionActor.kind, delivery.session_id, Deliver(command=command))
            except Exception as exc:
                logger.warning("command_hold_retry", error=str(exc))
                continue
            if renewed is None:
                await _quietly(delivery.ack())
                return
            outcome = renewed


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _quietly(operation: Awaitable[None]) -> None:
    """Acknowledge, refuse or publish what we can: with NATS gone, JetStream redelivers later instead."""
    try:
        async with asyncio.timeout(5.0):
            await operation
    except (BusError, TimeoutError, OSError) as exc:
        logger.warning("command_ack_failed", error=str(exc) or type(exc).__name__)


async def _supervised(name: str, run: Callable[[], Awaitable[None]], backoff: float = 1.0) -> None:
    """Run a never-ending loop, restarting it after a crash (it resumes from its checkpoint)."""
    while True:
        try:
            await run()
        except Exception:
            logger.exception("background_task_crashed", task=name)
        await asyncio.sleep(backoff)
