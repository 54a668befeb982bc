"""One NATS subscription per session per gateway, fanned out to that session's sockets.

Each socket is a `Listener` with a bounded buffer. A session's pump hands every
item it receives to each listener without waiting (`offer`), so a socket that
does not keep up cannot hold up the others: past its bound it is marked
`overflowed`, is given nothing more, and its connection closes it (ws.py).
A frame is rendered and encoded once for all the sockets it goes to.

A `CommandRefused` goes only to the socket that sent the command it refuses
(`Claims`): by its idempotency key, or for the commands that carry none
(`cancel`, `reply`, `confirmation_reply`) by the id they name.

While NATS is away the live subjects have a gap. After each reconnect every
listener gets a `RESYNC` marker, ahead of anything received on the new
connection (the reconnect counter moves before the subscriptions are sent
again), and its connection reads the log from its last position before it goes on.

A persisted event whose position is beyond the log's head as this gateway
knows it is checked against the log first (`LogHead`): one bogus item on a live
subject must not move every socket's cursor past the real events to come.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass
from enum import Enum

import structlog

from bus import Bus, TypedSubscription
from bus.tracing import Context, SpanKind, captured, following
from projections import EventLog, EventLogError
from schemas import CommandRefused, EventOmitted, FeedItem, RecordedEvent, codec
from schemas.texts import ENGLISH, Texts

from .head import LogHead
from .protocol import encode_frame
from .render import render

logger = structlog.get_logger("agentbus.gateway")

WATCH_INTERVAL = 0.2
"""Seconds between two looks at the NATS connection's reconnect counter (between items, too)."""


@dataclass(frozen=True, slots=True)
class Live:
    """An item of the live feed; `text` is its frame, encoded once, or None when the socket renders it itself."""

    item: FeedItem
    text: str | None
    trace: Context | None = None
    """The span that received it (`bus.tracing`), which each socket's send continues."""


class Marker(Enum):
    RESYNC = "resync"
    """NATS reconnected: read the log after the last position before the next live item."""


RESYNC = Marker.RESYNC

Queued = Live | Marker


class Claims:
    """The keys of the commands one socket sent (the newest `KEYS`): a refusal naming one is that socket's."""

    KEYS = 256

    def __init__(self) -> None:
        self._keys: collections.OrderedDict[str, None] = collections.OrderedDict()

    def sent_key(self, key: str) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self.KEYS:
            self._keys.popitem(last=False)

    def has_key(self, key: str) -> bool:
        return key in self._keys


class Listener:
    """One socket's mailbox on its session's feed, bounded to `limit` items."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.claims = Claims()
        self.overflowed = False
        self.dropped = asyncio.Event()
        """Set once the listener overflowed, however busy its sender is."""
        self._queue: collections.deque[Queued] = collections.deque()
        self._ready = asyncio.Event()

    def offer(self, entry: Queued) -> None:
        """Take `entry` without waiting; past `limit` items, drop everything and mark the listener overflowed."""
        if self.overflowed:
            return
        if entry is RESYNC and self._queue and self._queue[-1] is RESYNC:
            return  # one read of the log covers both gaps
        if len(self._queue) >= self.limit:
            self.overflowed = True
            self._queue.clear()
            self.dropped.set()
        else:
            self._queue.append(entry)
        self._ready.set()

    async def get(self) -> Queued | None:
        """Wait for the next entry; None once the listener overflowed."""
        while not self._queue:
            if self.overflowed:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    @property
    def backlog(self) -> int:
        return len(self._queue)


class _SessionFeed:
    """The one subscription of a session and the listeners it feeds."""

    def __init__(self, session_id: str, texts: Texts) -> None:
        self.session_id = session_id
        self.texts = texts
        """The session's language (its metadata's), in which its frames are rendered once for all its sockets."""
        self.listeners: list[Listener] = []
        self.subscription: TypedSubscription[FeedItem] | None = None
        self.started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.starting: asyncio.Task[None] | None = None
        self.pump: asyncio.Task[None] | None = None

    def dispatch(self, item: FeedItem) -> None:
        self.listeners = [listener for listener in self.listeners if not listener.overflowed]
        if isinstance(item, CommandRefused):
            for listener in self._owners(item):
                listener.offer(Live(item, None, captured()))
            return
        text = None if isinstance(item, EventOmitted) else encode_frame(render(item, self.texts))
        entry = Live(item, text, captured())
        for listener in self.listeners:
            listener.offer(entry)

    def _owners(self, refusal: CommandRefused) -> list[Listener]:
        """The sockets that sent the refused command: every holder of its key (none for a command from elsewhere)."""
        key = refusal.idempotency_key
        return [] if key is None else [each for each in self.listeners if each.claims.has_key(key)]


class Fanout:
    """The gateway's live subscriptions, one per session with at least one socket open."""

    def __init__(self) -> None:
        self._feeds: dict[str, _SessionFeed] = {}
        self._bus: Bus | None = None
        self._head: LogHead | None = None
        self._reconnects = 0
        self._watcher: asyncio.Task[None] | None = None
        self.items_total = 0
        """Items received from NATS (each counted once, however many sockets it went to)."""
        self.resyncs_total = 0
        """NATS reconnects after which every socket read the log again."""
        self.unproven_total = 0
        """Live items dropped because they claimed a position the log does not reach."""

    @property
    def subscriptions(self) -> int:
        return len(self._feeds)

    async def join(
        self, bus: Bus, event_log: EventLog, session_id: str, listener: Listener, texts: Texts = ENGLISH
    ) -> None:
        """Feed `listener` with the session's live items from now on; return once the subscription is in force.

        Anything committed after this returns reaches the listener, so a
        caller reads the log only afterwards. Raises what subscribing raised
        (NATS unreachable) with the listener removed.
        """
        if self._bus is None:
            self._bus, self._reconnects = bus, _reconnects(bus)
        if self._head is None:
            self._head = LogHead(event_log)
        feed = self._feeds.get(session_id)
        if feed is None:
            feed = self._feeds[session_id] = _SessionFeed(session_id, texts)
            feed.starting = asyncio.create_task(self._start(bus, feed), name=f"fanout-start-{session_id}")
        feed.listeners.append(listener)
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch(bus), name="fanout-watch")
        try:
            await asyncio.shield(feed.started)
        except BaseException:
            await self.leave(session_id, listener)
            raise

    async def leave(self, session_id: str, listener: Listener) -> None:
        """Stop feeding `listener`; the session's subscription ends with its last listener."""
        feed = self._feeds.get(session_id)
        if feed is None:
            return
        if listener in feed.listeners:
            feed.listeners.remove(listener)
        feed.listeners = [each for each in feed.listeners if not each.overflowed]
        if feed.listeners or not feed.started.done():
            return
        del self._feeds[session_id]
        await _stop(feed)

    async def _start(self, bus: Bus, feed: _SessionFeed) -> None:
        try:
            feed.subscription = await bus.subscribe(bus.subjects.session_evt(feed.session_id), codec.feed)
        except BaseException as exc:
            if self._feeds.get(feed.session_id) is feed:
                del self._feeds[feed.session_id]
            if isinstance(exc, Exception):
                feed.started.set_exception(exc)  # the joiners raise it
                return
            feed.started.cancel()
            raise
        feed.pump = asyncio.create_task(self._pump(bus, feed), name=f"fanout-{feed.session_id}")
        feed.started.set_result(None)
        if not feed.listeners and self._feeds.get(feed.session_id) is feed:
            del self._feeds[feed.session_id]  # every socket left while it subscribed
            await _stop(feed)

    async def _pump(self, bus: Bus, feed: _SessionFeed) -> None:
        assert feed.subscription is not None
        async for item in feed.subscription:
            self._check_reconnects(bus)
            self.items_total += 1
            # The publisher's trace (a token's turn, an event's relay) goes on: this gateway's receipt of it.
            with following("gateway receive", feed.subscription.trace, kind=SpanKind.CONSUMER):
                if isinstance(item, RecordedEvent) and not await self._proven(feed, item):
                    continue
                try:
                    feed.dispatch(item)
                except Exception:  # a bug rendering one item must not silence the session: its sockets read the log
                    logger.exception("fanout_dispatch_failed", session_id=feed.session_id)
                    for listener in feed.listeners:
                        listener.offer(RESYNC)

    async def _proven(self, feed: _SessionFeed, item: RecordedEvent) -> bool:
        """Whether the log reaches `item`'s position; if it cannot be read, the sockets read it again once it can."""
        assert self._head is not None
        try:
            if await self._head.covers(item.position):
                return True
        except EventLogError as exc:
            logger.warning(
                "live_position_unchecked", session_id=feed.session_id, position=item.position, error=str(exc)
            )
            for listener in feed.listeners:
                listener.offer(RESYNC)
            return False
        self.unproven_total += 1
        logger.warning("live_position_beyond_log", session_id=feed.session_id, position=item.position)
        return False

    async def _watch(self, bus: Bus) -> None:
        """Look at the reconnect counter while any session has sockets, so a quiet session resyncs too."""
        while self._feeds:
            self._check_reconnects(bus)
            await asyncio.sleep(WATCH_INTERVAL)

    def _check_reconnects(self, bus: Bus) -> None:
        seen = _reconnects(bus)
        if seen == self._reconnects:
            return
        self._reconnects = seen
        self.resyncs_total += 1
        logger.info("fanout_resync", sessions=len(self._feeds))
        for feed in self._feeds.values():
            for listener in feed.listeners:
                listener.offer(RESYNC)


def _reconnects(bus: Bus) -> int:
    """How often the connection has reconnected; it moves before the subscriptions are sent again."""
    return int(bus.nc.stats["reconnects"])


async def _stop(feed: _SessionFeed) -> None:
    if feed.pump is not None:
        feed.pump.cancel()
        await asyncio.wait([feed.pump])
    if feed.subscription is not None:
        await feed.subscription.close()
