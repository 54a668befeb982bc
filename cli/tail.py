"""`agentbus tail <session>`: a session's feed on the terminal, from the log, then live, until Ctrl-C.

It reads the feed as a WebSocket client of the gateway does (`gateway/ws.py`),
but over the bus: subscribe to the live subject first, then print the log
after `--after`, then the live items, skipping any event whose position was
printed already, so every position shows once and in order. An event too big
for NATS comes as `event_omitted` and is read from the log.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from bus import Bus, BusError, TypedSubscription
from bus.credentials import Credential
from gateway.feed import resolve
from gateway.head import LogHead
from projections import EventLog, EventLogError, create_engine
from schemas import EventOmitted, FeedItem, InvalidId, RecordedEvent, Subjects, codec, validate_id
from schemas.events import SessionCreated

from ._feed_lines import FeedPrinter
from .credentials import load_credential
from .settings import Settings, client_credentials, require_urls


def cmd_tail(args: argparse.Namespace, settings: Settings) -> int:
    try:
        session_id = validate_id(args.session)
    except InvalidId as exc:
        raise SystemExit(f"agentbus: {exc}") from None
    if args.after < 0:
        raise SystemExit("agentbus: --after must be 0 or more")
    nats_url, database_url = require_urls(args, settings)
    try:
        credential = load_credential(client_credentials(args, settings))
        asyncio.run(_tail(session_id, args.after, nats_url, database_url, settings, credential))
    except KeyboardInterrupt:  # before the loop took over SIGINT (while connecting): as clean an end
        pass
    except BrokenPipeError:  # `agentbus tail … | head`: the reader is gone, so are we
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
    return 0


async def _tail(
    session_id: str, after: int, nats_url: str, database_url: str, settings: Settings, credential: Credential | None
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    engine = create_engine(database_url)
    event_log = EventLog(engine)
    try:
        try:
            first = await event_log.read_session(session_id, limit=1)
        except EventLogError as exc:
            raise SystemExit(f"agentbus: cannot read the log: {exc}") from None
        if not first:
            raise SystemExit(f"agentbus: session {session_id} is not in the log")
        created = first[0].event
        agent = created.agent_name if isinstance(created, SessionCreated) else "agent"
        try:
            bus = await Bus.connect(
                nats_url,
                name="agentbus-tail",
                subjects=Subjects(settings.subject_prefix),
                credential=credential,
            )
        except BusError as exc:
            raise SystemExit(f"agentbus: {exc}") from None
        try:
            printer = FeedPrinter(sys.stdout, agent)
            # Subscribe before reading the log, so nothing committed meanwhile is missed.
            live = await bus.subscribe(bus.subjects.session_evt(session_id), codec.feed)
            follow = asyncio.create_task(_follow(event_log, session_id, after, live, printer), name="tail")
            stopped = asyncio.create_task(stop.wait(), name="tail-stop")
            try:
                await asyncio.wait([follow, stopped], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (follow, stopped):
                    task.cancel()
                await asyncio.gather(follow, stopped, return_exceptions=True)
                printer.close()
                await live.close()
            if not follow.cancelled() and (failure := follow.exception()) is not None:
                if isinstance(failure, EventLogError):
                    raise SystemExit(f"agentbus: cannot read the log: {failure}")
                raise failure
        finally:
            await bus.close()
    finally:
        await event_log.close()
        await engine.dispose()


async def _follow(
    event_log: EventLog, session_id: str, after: int, live: TypedSubscription[FeedItem], printer: FeedPrinter
) -> None:
    """Print the log after `after`, then the live feed, each position once; run until cancelled."""
    last = after
    async for recorded in event_log.iter_session(session_id, after=after):
        printer.show(recorded)
        last = recorded.position
    head = LogHead(event_log)
    # Items that arrived during the catch-up wait in the subscription's buffer.
    async for item in live:
        if isinstance(item, RecordedEvent | EventOmitted):
            # A position the log does not reach is a bogus item: moving `last` to it would hide every real one.
            if item.position <= last or not await head.covers(item.position):
                continue
            found = await resolve(event_log, session_id, item)
            if found is None:
                continue
            last = item.position
            item = found
        printer.show(item)
