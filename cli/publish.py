"""`agentbus publish`: a chat message onto the bus, as another service would send it, and the session's verdict.

The session answers a message with its key in one of two ways: it records a
`user_message` (or, while a board or team runs, a `user_intervention`), or it
publishes a `command_refused` frame on its live subject (unknown or closed
session, empty message). We subscribe before publishing, so neither can slip
by. A key JetStream already stored is not delivered again (`duplicate`): its
verdict is in the log, or, for a refusal the session did not record, in the
read model (the session is unknown or closed); the first copy may also still
be on its way, so the feed is watched meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from typing import NamedTuple

import msgspec

from bus import Bus, BusError, CommandAck, TypedSubscription, publish_command
from bus.commands import CommandRejected
from gateway.feed import resolve
from projections import EventLog, EventLogError, ReadModels, create_engine
from schemas import CommandRefused, FeedItem, InvalidId, RecordedEvent, SendMessage, Subjects, codec, validate_id
from schemas.events import CommandRejected as RecordedRefusal
from schemas.events import UserIntervention, UserMessage

from .credentials import load_credential
from .settings import Settings, client_credentials, discover

EXIT_REFUSED = 2
EXIT_NO_VERDICT = 1


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    """What `publish` prints once the session accepted the message."""

    sequence: int
    """The command's sequence in the command stream."""
    duplicate: bool
    """JetStream had a command with this key already: nothing new was sent."""
    idempotency_key: str
    message_id: str
    """The recorded message's id (for an intervention: the id of the board or team it joined)."""
    position: int
    """Where the session recorded it in the log."""
    taken_as: str = "message"
    """`message`, or `intervention` when a running board or team took it."""


class Refusal(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    message: str


Verdict = Receipt | Refusal


def cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    found = discover(args, settings)
    nats_url = settings.nats_url or (found.nats_url if found else None)
    database_url = settings.database_url or (found.database_url if found else None)
    if not nats_url:
        raise SystemExit("no NATS: set AGENTBUS_NATS_URL or run `agentbus up` first")
    try:
        validate_id(args.session)
    except InvalidId as exc:
        print(f"agentbus: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    verdict = asyncio.run(_publish(args, settings, nats_url, database_url))
    match verdict:
        case Receipt():
            print(msgspec.json.encode(verdict).decode())
            return 0
        case Refusal(code=code, message=message):
            print(f"agentbus: session {args.session} refused the message ({code}): {message}", file=sys.stderr)
            return EXIT_REFUSED
        case None:
            print(
                f"agentbus: the message was stored on the bus, but session {args.session} gave no verdict within "
                f"{args.timeout:g} s (is a worker running?); it will be taken when one is",
                file=sys.stderr,
            )
            return EXIT_NO_VERDICT


async def _publish(
    args: argparse.Namespace, settings: Settings, nats_url: str, database_url: str | None
) -> Verdict | None:
    key = args.idempotency_key or uuid.uuid4().hex
    command = SendMessage(content=args.text, idempotency_key=key)
    try:
        bus = await Bus.connect(
            nats_url,
            name="agentbus-publish",
            subjects=Subjects(settings.subject_prefix),
            credential=load_credential(client_credentials(args, settings)),
        )
    except BusError as exc:
        raise SystemExit(str(exc)) from None
    try:
        async with _database(database_url) as db:
            live = await bus.subscribe(bus.subjects.session_evt(args.session), codec.feed)
            try:
                try:
                    ack = await publish_command(bus, args.session, command)
                except CommandRejected as exc:
                    return Refusal(code=exc.code, message=exc.reason)
                except BusError as exc:
                    raise SystemExit(f"agentbus: {exc}") from None
                judge = _Judge(args.session, ack, key)
                # A fresh key cannot be in the log yet; a given one may have been taken before.
                if db is not None and (ack.duplicate or args.idempotency_key):
                    if (verdict := await judge.from_log(db.events)) is not None:
                        return verdict
                    if ack.duplicate and (verdict := await judge.from_read_model(db)) is not None:
                        return verdict
                try:
                    async with asyncio.timeout(args.timeout):
                        return await judge.from_feed(live, db.events if db is not None else None)
                except TimeoutError:
                    return None
            finally:
                await live.close()
    finally:
        await bus.close()


class _Database(NamedTuple):
    events: EventLog
    views: ReadModels


@contextlib.asynccontextmanager
async def _database(url: str | None) -> AsyncIterator[_Database | None]:
    """The log and read models of `url`, or None: without a database the feed alone gives the verdict."""
    if url is None:
        yield None
        return
    engine = create_engine(url)
    event_log = EventLog(engine)
    try:
        yield _Database(event_log, ReadModels(engine))
    finally:
        await event_log.close()
        await engine.dispose()


class _Judge:
    """Recognizes the session's verdict on the message with `key` among the items of its feed or log."""

    def __init__(self, session_id: str, ack: CommandAck, key: str) -> None:
        self.session_id = session_id
        self.ack = ack
        self.key = key

    def see(self, item: FeedItem) -> Verdict | None:
        match item:
            case CommandRefused(idempotency_key=key, code=code, message=message) if key == self.key:
                return Refusal(code=code, message=message)
            case RecordedEvent(event=RecordedRefusal(idempotency_key=key, code=code, reason=reason)) if key == self.key:
                return Refusal(code=code, message=reason)
            case RecordedEvent(event=UserMessage(idempotency_key=key, message_id=message_id)) if key == self.key:
                return self._receipt(message_id, item.position, "message")
            case RecordedEvent(event=UserIntervention(idempotency_key=key, target_id=target_id)) if key == self.key:
                return self._receipt(target_id, item.position, "intervention")
        return None

    async def from_log(self, event_log: EventLog) -> Verdict | None:
        """The verdict the log already holds (a retried key); None if it holds none."""
        try:
            async for recorded in event_log.iter_session(self.session_id):
                if (verdict := self.see(recorded)) is not None:
                    return verdict
        except EventLogError as exc:
            print(f"agentbus: cannot read the log ({exc}); waiting for the session's verdict", file=sys.stderr)
        return None

    async def from_read_model(self, db: _Database) -> Verdict | None:
        """The refusal a duplicate's session gave unrecorded (unknown or closed), worded as the session words it."""
        try:
            await db.views.wait_caught_up(db.events)
            session = await db.views.get_session(self.session_id)
        except EventLogError:
            return None
        if session is None:
            return Refusal(code="unknown_session", message=f"session {self.session_id} does not exist")
        if session.status == "closed":
            return Refusal(code="session_closed", message=f"session {self.session_id} is closed")
        return None

    async def from_feed(self, live: TypedSubscription[FeedItem], event_log: EventLog | None) -> Verdict | None:
        """Wait on the live feed for the verdict (an event too big for NATS is read from the log)."""
        async for item in live:
            if event_log is not None:
                with contextlib.suppress(EventLogError):  # then the item stays as it came
                    item = await resolve(event_log, self.session_id, item) or item
            if (verdict := self.see(item)) is not None:
                return verdict
        return None

    def _receipt(self, message_id: str, position: int, taken_as: str) -> Receipt:
        return Receipt(
            sequence=self.ack.sequence,
            duplicate=self.ack.duplicate,
            idempotency_key=self.key,
            message_id=message_id,
            position=position,
            taken_as=taken_as,
        )
