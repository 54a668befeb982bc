"""The typed NATS connection: publish, subscribe, request and serve msgspec messages."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

import msgspec
import nats.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from schemas import Command, DecodeError, Decoder, ErrorReply, Subjects, encode, limits

from .credentials import Credential
from .errors import BusError, MessageTooLarge, PublishFailed, RequestFailed
from .origin import Origin
from .tracing import Context, SpanKind, child, extract, following, inject

logger = structlog.get_logger("agentbus.bus")

T = TypeVar("T")
R = TypeVar("R", bound=msgspec.Struct)

RECONNECT_WAIT = 0.5
"""Seconds before a server that just failed is tried again; another server of the list is tried at once."""
PING_INTERVAL = 10
MAX_OUTSTANDING_PINGS = 2
"""A server that stops answering pings (a node lost without a reset) is left after about 30 s, not nats-py's 4 to 6 min."""


def nats_servers(url: str) -> list[str]:
    """Split `AGENTBUS_NATS_URL` (one URL, or a comma-separated list of a cluster's nodes) into the servers to use.

    Every NATS connection of agentbus takes its servers from here, so a
    cluster named once reaches the worker, the gateway and every command.
    """
    servers = [part.strip() for part in url.split(",")]
    if not all(servers):
        raise BusError(f"a NATS URL list has an empty entry: {url!r}")
    return servers


class TypedSubscription(Generic[T]):
    """Messages of one subject, decoded; undecodable ones are logged and skipped.

    nats-py buffers at most `pending_msgs_limit` messages for a slow reader and
    drops the excess (reported through the connection's error callback), so a
    stuck consumer cannot exhaust memory.
    """

    def __init__(self, sub: Subscription, decoder: Decoder[T]) -> None:
        self._sub = sub
        self._decoder = decoder
        self.trace: Context | None = None
        """The trace context the message just yielded carried (`bus.tracing`), for the span that handles it."""

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[T]:
        async for msg in self._sub.messages:
            try:
                decoded = self._decoder.decode(msg.data)
                self.trace = extract(msg.headers)
                yield decoded
            except DecodeError as exc:
                logger.warning("undecodable_message", subject=msg.subject, error=str(exc))

    async def close(self) -> None:
        """Stop receiving; safe to call twice or after the connection closed."""
        try:
            await self._sub.unsubscribe()
        except (TimeoutError, nats.errors.Error):
            pass  # closed or reconnecting: the server forgets the subscription with the connection


class Bus:
    """One NATS connection speaking agentbus messages under `subjects.prefix`.

    Its `origin` signs the commands and requests it publishes (with its
    credential's nkey), and tells whom those it receives act for (a worker's);
    see `bus.origin`.
    """

    def __init__(self, nc: Client, subjects: Subjects, origin: Origin | None = None) -> None:
        self.nc = nc
        self.subjects = subjects
        self.origin = origin or Origin()

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        name: str,
        subjects: Subjects | None = None,
        credential: Credential | None = None,
        origin: Origin | None = None,
    ) -> Bus:
        """Connect to `url` (one server or a comma-separated cluster list, see `nats_servers`).

        The client starts on a random server of the list, fails over to the
        others (and to those the cluster announces) and reconnects forever
        after a drop: commands wait in JetStream meanwhile. With `credential`
        it authenticates with that nkey, takes its replies on that
        credential's own inbox and, unless `origin` says otherwise, signs what
        it publishes with it, so workers know who sent it (`bus.origin`).
        """
        servers = nats_servers(url)
        nc = Client()
        lost = [False]
        """While no server can be reached, attempts fail every half second: log the first only."""

        async def on_error(exc: Exception) -> None:
            if lost[0]:
                return
            logger.warning("nats_error", error=str(exc), client=name)
            if not nc.is_connected:
                lost[0] = True

        async def on_disconnect() -> None:
            if nc.is_closed or nc.is_draining:
                return  # our own close, not a failure
            logger.warning("nats_disconnected", client=name)

        async def on_reconnect() -> None:
            lost[0] = False
            server = nc.connected_url.netloc if nc.connected_url else None
            logger.info("nats_reconnected", client=name, server=server)

        try:
            await nc.connect(
                servers,
                name=name,
                max_reconnect_attempts=-1,
                reconnect_time_wait=RECONNECT_WAIT,  # type: ignore[arg-type]  # annotated int, used as seconds to sleep
                ping_interval=PING_INTERVAL,
                max_outstanding_pings=MAX_OUTSTANDING_PINGS,
                connect_timeout=5,
                drain_timeout=5,
                allow_reconnect=True,
                error_cb=on_error,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
                **(credential.connect_options() if credential is not None else {}),
            )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            raise BusError(f"cannot connect to NATS at {url}: {exc or type(exc).__name__}") from exc
        lost[0] = False
        return cls(nc, subjects or Subjects(), origin if origin is not None else Origin(signer=credential))

    async def flush(self, timeout: int = 2) -> None:
        """Wait until the server has everything published so far; `PublishFailed` if it cannot be reached."""
        try:
            await self.nc.flush(timeout=timeout)
        except (TimeoutError, nats.errors.Error) as exc:
            raise PublishFailed("flush", str(exc) or type(exc).__name__) from None

    @property
    def connected(self) -> bool:
        """Whether the connection to NATS is up right now (not reconnecting, not closed)."""
        return bool(self.nc.is_connected)

    async def publish(self, subject: str, message: msgspec.Struct) -> None:
        """Publish one message (fire and forget, core NATS); `MessageTooLarge` or `PublishFailed` if NATS refuses it.

        While the connection is reconnecting, nats-py buffers the message and
        sends it once reconnected.
        """
        data = encode(message)
        try:
            # The current trace's context goes along (a token, or the relay's event): the gateway continues it.
            await self.nc.publish(subject, data, headers=inject())
        except nats.errors.MaxPayloadError:
            raise MessageTooLarge(subject, len(data), self.nc.max_payload) from None
        except nats.errors.Error as exc:
            raise PublishFailed(subject, str(exc) or type(exc).__name__) from None

    async def subscribe(
        self, subject: str, decoder: Decoder[T], *, queue: str = "", pending_msgs_limit: int = 65536
    ) -> TypedSubscription[T]:
        """Subscribe to `subject`; iterate the result to receive decoded messages.

        Returns once the server has the subscription, so a caller that
        subscribes and then reads a backlog cannot miss what was published between.
        """
        sub = await self.nc.subscribe(subject, queue=queue, pending_msgs_limit=pending_msgs_limit)
        await self.nc.flush()
        return TypedSubscription(sub, decoder)

    async def request(self, subject: str, message: msgspec.Struct, decoder: Decoder[T], *, timeout: float = 5.0) -> T:
        """Send a request (signed if this bus has a signer) and decode its reply; `RequestFailed` when there is none."""
        data = encode(message)
        try:
            with child("bus request", kind=SpanKind.CLIENT) as span:
                if span.is_recording():
                    span.set_attribute("messaging.destination.name", subject)
                headers = inject(self.origin.headers(subject, data)) or None
                msg = await self.nc.request(subject, data, timeout=timeout, headers=headers)
        except nats.errors.NoRespondersError:
            raise RequestFailed(subject, "no responders (is a worker running?)") from None
        except nats.errors.TimeoutError:
            raise RequestFailed(subject, f"no reply within {timeout}s") from None
        try:
            return decoder.decode(msg.data)
        except DecodeError as exc:
            raise RequestFailed(subject, str(exc)) from None

    async def serve(
        self,
        subject: str,
        decoder: Decoder[T],
        handler: Callable[[T], Awaitable[msgspec.Struct]],
        *,
        queue: str,
        concurrent: bool = False,
    ) -> Subscription:
        """Answer requests on `subject` with `handler`, one queue-group member among many.

        Undecodable requests, and commands that break an entrance limit
        (`schemas.limits`), get an `ErrorReply` and never reach the handler; a
        request's principal reaches it only if a trusted gateway signed it
        (else it acts as the service that signed it, or the anonymous one, `bus.origin`); a
        handler that raises is logged and answered with an `internal` error, so the
        requester is not left waiting for a timeout. nats-py runs a subscription's
        callbacks one at a time; with `concurrent`, each request is answered in a
        task of its own (kept until it has replied), so a slow answer does not
        hold up the others.
        """

        async def on_request(msg: Msg) -> None:
            try:
                request = decoder.decode(msg.data)
            except DecodeError as exc:
                await msg.respond(encode(exc.as_reply()))
                return
            if isinstance(request, Command) and (refusal := limits.check(request)):
                await msg.respond(encode(ErrorReply(code=refusal.code, message=refusal.message)))
                return
            if isinstance(request, msgspec.Struct):
                request = self.origin.acting_for(request, msg.subject, msg.data, msg.headers)
            try:
                with following("bus serve", extract(msg.headers), kind=SpanKind.SERVER) as span:
                    if span.is_recording():
                        span.set_attribute("messaging.destination.name", msg.subject)
                    reply = await handler(request)
            except Exception as exc:  # a bug in one request must not kill the service
                logger.exception("request_handler_failed", subject=msg.subject)
                reply = ErrorReply(code="internal", message=f"{type(exc).__name__}: {exc}")
            await msg.respond(encode(reply))

        answering: set[asyncio.Task[None]] = set()

        async def in_task(msg: Msg) -> None:
            task = asyncio.create_task(on_request(msg), name=f"serve-{subject}")
            answering.add(task)
            task.add_done_callback(answering.discard)

        return await self.nc.subscribe(subject, queue=queue, cb=in_task if concurrent else on_request)

    async def close(self) -> None:
        """Flush what was published and close the connection (at once if NATS is unreachable)."""
        if self.nc.is_closed:
            return
        try:
            await self.nc.drain()
        except (TimeoutError, nats.errors.Error, OSError):
            # The transport is gone: closing may still report the lost socket.
            with contextlib.suppress(OSError):
                await self.nc.close()
