"""Command intake: how the commands of the stream reach their sessions, in order, and when they are acked.

Each session has a lane: its deliveries are accepted one at a time, in the
order JetStream delivered them, also across failures (an outage is retried in
place, never by a nak that would let later commands overtake). A command whose
work is still running is held, and its work asserted again every few seconds,
until the work is recorded; a command that fails by itself is refused for good.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from bus import Bus, BusError, CommandConsumer, CommandDelivery
from bus.tracing import SpanKind, following
from projections import EventLog, EventLogError, NewEvent
from schemas import CommandRefused, DecodeError, EventMeta, SendMessage, UnknownTypeError, refusals_stream
from schemas.events import CommandRejected

from .errors import is_outage
from .runtime import ActorHost
from .session import Abandon, Deliver, SessionActor

logger = structlog.get_logger("agentbus.intake")

COMMAND_ATTEMPTS = 3
"""Tries of a command that fails by itself (not an outage) before it is refused for good."""
MAX_DELIVERIES = 20
"""Deliveries of one command (each a worker that died holding it) before it is refused for good."""
RETRY_BACKOFF = 0.2
MAX_BACKOFF = 5.0
"""Seconds between retries of a command during an outage: doubling from RETRY_BACKOFF up to this."""


class CommandIntake:
    """Takes deliveries from consumers and hands them to session actors; owns the tasks that do it."""

    def __init__(self, bus: Bus, host: ActorHost, event_log: EventLog, *, ack_wait: float, work_timeout: float) -> None:
        self._bus = bus
        self._event_log = event_log
        self._host = host
        self._ack_wait = ack_wait
        self._work_timeout = work_timeout
        self._lanes: dict[str, list[CommandDelivery]] = {}
        self.in_flight: set[asyncio.Task[None]] = set()
        """Lanes accepting commands and holds waiting for work: awaited for a grace, then cancelled, at stop."""
        self._of_session: dict[str, set[asyncio.Task[None]]] = {}
        """The same tasks by session, so that the sessions of a partition handed over can be let go."""

    async def stop(self, grace: float) -> None:
        """Give the work in flight `grace` seconds to finish, then cut it (JetStream redelivers its commands)."""
        if self.in_flight:
            await asyncio.wait(self.in_flight, timeout=grace)
        for task in list(self.in_flight):
            task.cancel()
        await asyncio.gather(*self.in_flight, return_exceptions=True)

    async def hand_back(self, sessions: Callable[[str], bool], grace: float) -> set[str]:
        """Let go of the sessions `sessions` selects (those of partitions handed to another worker).

        Their work in flight gets `grace` seconds to finish; what is left is cut
        and its commands given back to JetStream (nak), so the next owner takes
        them at once and resumes the work from the log. Return the sessions let go.
        """
        chosen = {session_id for session_id in self._of_session if sessions(session_id)}
        tasks = {task for session_id in chosen for task in self._of_session.get(session_id, ())}
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return chosen

    def _track(self, session_id: str, task: asyncio.Task[None]) -> None:
        self.in_flight.add(task)
        self._of_session.setdefault(session_id, set()).add(task)

        def forget(done: asyncio.Task[None]) -> None:
            self.in_flight.discard(done)
            tasks = self._of_session.get(session_id)
            if tasks is not None:
                tasks.discard(done)
                if not tasks:
                    del self._of_session[session_id]

        task.add_done_callback(forget)

    async def take(self, consumer: CommandConsumer) -> None:
        """Hand each delivery to its session's lane: one session's commands are accepted one at a time, in order."""
        async for delivery in consumer:
            lane = self._lanes.get(delivery.session_id)
            if lane is None:
                lane = self._lanes[delivery.session_id] = []
                task = asyncio.create_task(
                    self._run_lane(delivery.session_id, lane), name=f"lane-{delivery.session_id}"
                )
                self._track(delivery.session_id, task)
            lane.append(delivery)

    async def _run_lane(self, session_id: str, lane: list[CommandDelivery]) -> None:
        try:
            while lane:
                delivery = lane[0]
                # The gateway's trace goes on here: the session's handling of the command is its child.
                with following("take command", delivery.trace, kind=SpanKind.CONSUMER) as span:
                    if span.is_recording():
                        span.set_attributes(
                            {
                                "agentbus.session_id": session_id,
                                "messaging.message.delivery_count": delivery.num_delivered,
                            }
                        )
                    await self._accept(delivery)
                lane.pop(0)
        finally:
            if self._lanes.get(session_id) is lane:
                del self._lanes[session_id]
            # Cut (stopping, or the session handed over): what the lane still holds goes back to
            # JetStream in order now, not after the ack wait, so the next owner takes it at once.
            for delivery in lane:
                await _quietly(delivery.nak())

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
        if isinstance(command, UnknownTypeError):  # a newer client's command, during a rolling upgrade
            await self._refuse(delivery, "unknown_command", str(command))
            return
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
                outcome = await self._host.ask(SessionActor.kind, delivery.session_id, Deliver(command=command))
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
        self._track(delivery.session_id, hold)

    async def _refuse(self, delivery: CommandDelivery, code: str, reason: str) -> None:
        """Record that a command is refused for good, tell the sender, and terminate it."""
        logger.warning("command_refused", code=code, reason=reason, sequence=delivery.sequence)
        key = getattr(delivery.command, "idempotency_key", None)
        rejected = CommandRejected(sequence=delivery.sequence, code=code, reason=reason[:500], idempotency_key=key)
        meta = EventMeta(correlation_id=key, causation_id=f"cmd-{delivery.sequence}", actor="worker")
        try:
            await self._event_log.append(
                refusals_stream(delivery.session_id),
                [NewEvent(event=rejected, session_id=delivery.session_id, meta=meta)],
                expected_version=None,
            )
        except EventLogError as exc:  # the refusal still reaches the sender and the log of the worker
            logger.warning("command_refusal_unrecorded", error=str(exc))
        refusal = CommandRefused(code=code, message=reason, idempotency_key=key)
        await _quietly(self._bus.publish(self._bus.subjects.session_evt(delivery.session_id), refusal))
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
                    await self._host.ask(SessionActor.kind, delivery.session_id, Abandon(key=key, reason=reason))
                renewed = await self._host.ask(SessionActor.kind, delivery.session_id, Deliver(command=command))
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
