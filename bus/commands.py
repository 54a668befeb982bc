"""Session commands through JetStream: the `AGENTBUS_CMD` stream, partitioned for workers.

The stream captures `<prefix>.session.*.cmd` and, through a subject transform,
stores each command under `<prefix>.part.<n>.session.<sid>.cmd` where
`n = partition(sid)` (a later layout under `part<generation>`, see
`bus.command_stream`). One durable pull consumer per partition means a worker
owns whole partitions, so every command of a session goes to one worker in
order, and partitions can be spread over (and taken over by) several workers.
Commands are de-duplicated by `Nats-Msg-Id` = `<session id>:<idempotency key>`:
JetStream de-duplicates over the whole stream (for `DUPLICATE_WINDOW_S`), and a
key is only unique within its session, so the header names both; the command
itself carries the plain key, which the session actor records.

Entrance limits (`schemas.limits`) are checked on both sides: `publish_command`
refuses a command that breaks one, and the consumer hands one published by
another client as a `DecodeError`, so the worker refuses and terms it instead of
failing on it at every redelivery.

A NATS server older than 2.10 has no subject transforms: the stream is then
unpartitioned and one consumer takes every command (per-session order holds,
but work cannot be split over workers).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import msgspec
import nats.errors
import nats.js.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from schemas import DecodeError, InvalidId, Layout, SessionCommand, Subjects, codec, encode, limits

from .connection import Bus
from .errors import BusError, PublishFailed
from .tracing import Context, SpanKind, child, extract, inject

logger = structlog.get_logger("agentbus.bus")

DEFAULT_PARTITIONS = 8
DUPLICATE_WINDOW_S = 24 * 3600
MSG_ID = "Nats-Msg-Id"


class CommandRejected(PublishFailed):
    """A command breaks an entrance limit (`schemas.limits`), so it was not published; `code` is the limit's."""

    def __init__(self, subject: str, refusal: limits.Refusal) -> None:
        super().__init__(subject, refusal.message)
        self.code = refusal.code


class ConsumerBacklog(msgspec.Struct, frozen=True, kw_only=True):
    """How many commands one consumer of the command stream has still to take and to finish."""

    consumer: str
    pending: int
    """Stored, not yet delivered to a worker."""
    ack_pending: int
    """Delivered, not yet acknowledged (being processed, or waiting for redelivery)."""


class CommandAck(msgspec.Struct, frozen=True, kw_only=True):
    """JetStream accepted a command (`duplicate`: it already had one with that key)."""

    sequence: int
    duplicate: bool
    idempotency_key: str | None


async def publish_command(bus: Bus, session_id: str, command: SessionCommand, *, timeout: float = 5.0) -> CommandAck:
    """Put a command on the session's command subject and wait for JetStream to store it.

    A command without an idempotency key gets a fresh one, so the key the
    stream de-duplicates by is also the one the session actor records (a
    message) and names in a refusal. A command that breaks an entrance limit
    raises `CommandRejected` unpublished.
    """
    if not command.idempotency_key:
        command = msgspec.structs.replace(command, idempotency_key=uuid.uuid4().hex)
    key = command.idempotency_key
    subject = bus.subjects.session_cmd(session_id)
    if refusal := limits.check(command):
        raise CommandRejected(subject, refusal)
    data = encode(command)
    # A bus with a credential signs it: workers believe a gateway's principal, and act as the service that signed.
    headers = {**({MSG_ID: dedup_id(session_id, key)} if key else {}), **bus.origin.headers(subject, data)}
    with child("publish command", kind=SpanKind.PRODUCER) as span:
        if span.is_recording():
            span.set_attributes({"messaging.destination.name": subject, "agentbus.session_id": session_id})
        try:
            ack = await bus.nc.jetstream().publish(subject, data, headers=inject(headers) or None, timeout=timeout)
        except nats.js.errors.NoStreamResponseError:
            raise PublishFailed(subject, "no command stream (is a worker running?)") from None
        except (nats.errors.TimeoutError, nats.js.errors.APIError) as exc:
            raise PublishFailed(subject, str(exc) or type(exc).__name__) from None
    return CommandAck(sequence=ack.seq, duplicate=bool(ack.duplicate), idempotency_key=key)


def dedup_id(session_id: str, key: str) -> str:
    """The `Nats-Msg-Id` of a command: its key scoped to its session (the stream de-duplicates across sessions)."""
    return f"{session_id}:{key}"


async def command_backlog(bus: Bus, *, timeout: float = 2.0) -> list[ConsumerBacklog]:
    """Return the backlog of every consumer of the command stream (`BusError` if it cannot be read)."""
    stream = bus.subjects.cmd_stream
    try:
        infos = await bus.nc.jetstream(timeout=timeout).consumers_info(stream)
    except nats.js.errors.NotFoundError:
        raise BusError(f"no command stream {stream} (is a worker running?)") from None
    except (TimeoutError, nats.errors.Error) as exc:
        raise BusError(f"cannot read the consumers of {stream}: {exc or type(exc).__name__}") from None
    return [
        ConsumerBacklog(consumer=info.name, pending=info.num_pending or 0, ack_pending=info.num_ack_pending or 0)
        for info in sorted(infos, key=lambda info: info.name)
    ]


class CommandDelivery:
    """One delivered command; `ack` it only once its effects are in the event log."""

    def __init__(self, msg: Msg, session_id: str, command: SessionCommand | DecodeError) -> None:
        self._msg = msg
        self.session_id = session_id
        self.command = command
        self.trace: Context | None = extract(msg.headers)
        """The trace the publisher's span began (`bus.tracing`): the worker's handling continues it."""

    @property
    def sequence(self) -> int:
        return self._msg.metadata.sequence.stream

    @property
    def num_delivered(self) -> int:
        return self._msg.metadata.num_delivered

    async def ack(self) -> None:
        await self._msg.ack()

    async def in_progress(self) -> None:
        """Tell JetStream the command is still being worked on (resets its ack timer)."""
        await self._msg.in_progress()

    async def nak(self, delay: float | None = None) -> None:
        await self._msg.nak(delay=delay)

    async def term(self) -> None:
        """Drop a command that can never succeed (e.g. undecodable); it is not redelivered."""
        await self._msg.term()


class CommandConsumer:
    """Pulls the commands of some partitions of a layout, one durable consumer per partition.

    An unpartitioned stream (`Layout(0)`) is consumed whole, as its partition 0.
    """

    def __init__(
        self,
        bus: Bus,
        layout: Layout,
        partitions: list[int],
        *,
        ack_wait: float = 30.0,
        batch: int = 64,
        queue_size: int = 1024,
    ) -> None:
        self._bus = bus
        self._layout = layout
        self._partitions = partitions
        self._ack_wait = ack_wait
        self._batch = batch
        self._queue: asyncio.Queue[CommandDelivery] = asyncio.Queue(queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._subscriptions: list[JetStreamContext.PullSubscription] = []

    @property
    def ack_wait(self) -> float:
        return self._ack_wait

    async def start(self) -> None:
        """Bind a pull subscription per partition and start fetching."""
        js = self._bus.nc.jetstream()
        subjects: Subjects = self._bus.subjects
        layout = self._layout
        filters = (
            {layout.consumer(0): subjects.all_session_cmds}
            if layout.partitions <= 0
            else {layout.consumer(p): subjects.partitioned_cmd(p, layout.stored_token) for p in self._partitions}
        )
        for durable, filter_subject in filters.items():
            config = ConsumerConfig(
                durable_name=durable,
                filter_subject=filter_subject,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=self._ack_wait,
                max_ack_pending=4096,
            )
            psub = await js.pull_subscribe(filter_subject, durable=durable, stream=subjects.cmd_stream, config=config)
            self._subscriptions.append(psub)
            self._tasks.append(asyncio.create_task(self._fetch(psub), name=f"fetch-{durable}"))

    async def _fetch(self, psub: JetStreamContext.PullSubscription) -> None:
        failing = False  # while fetches fail (e.g. a stream's leader election), only the first is logged
        while True:
            try:
                msgs = await psub.fetch(self._batch, timeout=1.0)
                failing = False
            except TimeoutError:
                # nats-py raises its own TimeoutError or, when the deadline runs out
                # between its two pull requests, a plain asyncio one: both mean "no
                # commands yet". Letting the plain one escape killed this partition's
                # loop silently, and its sessions' commands were never taken again.
                continue
            except (
                nats.errors.ConnectionClosedError,
                nats.errors.ConnectionReconnectingError,
                nats.js.errors.APIError,
            ) as exc:
                if not failing:
                    logger.warning("command_fetch_failed", error=str(exc), retrying_every=0.5)
                failing = True
                await asyncio.sleep(0.5)
                continue
            except Exception:
                # Whatever else nats-py raises, this partition must keep being
                # served: a dead loop would strand its sessions' commands.
                logger.exception("command_fetch_crashed")
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                try:
                    session_id = Subjects.session_of(msg.subject)
                except InvalidId as exc:
                    logger.warning("command_for_invalid_session", subject=msg.subject, error=str(exc))
                    await msg.term()
                    continue
                await self._queue.put(self._delivery(self._bus, msg, session_id))

    @staticmethod
    def _delivery(bus: Bus, msg: Msg, session_id: str) -> CommandDelivery:
        try:
            decoded = codec.session_commands.decode(msg.data)
        except DecodeError as exc:
            return CommandDelivery(msg, session_id, exc)
        # Another client may publish straight onto the subject: what breaks a
        # limit could never be recorded, so it is refused like undecodable bytes.
        if refusal := limits.check(decoded):
            return CommandDelivery(msg, session_id, DecodeError(codec.session_commands.name, refusal.message))
        # Its principal only if a trusted gateway signed it; else it acts as the service that signed it (or `service`).
        acting = bus.origin.acting_for(decoded, bus.subjects.session_cmd(session_id), msg.data, msg.headers)
        return CommandDelivery(msg, session_id, acting)

    def __aiter__(self) -> AsyncIterator[CommandDelivery]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[CommandDelivery]:
        if not self._tasks:
            raise BusError("CommandConsumer.start() was not called")
        while True:
            yield await self._queue.get()

    async def stop(self) -> None:
        """Stop fetching; commands fetched but not taken go back to JetStream now, unacked ones after the ack wait."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        while not self._queue.empty():
            try:
                await asyncio.wait_for(self._queue.get_nowait().nak(), 2.0)
            except (TimeoutError, nats.errors.Error):
                break  # NATS is gone: JetStream redelivers them after the ack wait instead
        for psub in self._subscriptions:
            try:
                await psub.unsubscribe()
            except (nats.errors.ConnectionClosedError, nats.errors.BadSubscriptionError):
                pass
        self._subscriptions.clear()
