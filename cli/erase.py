"""`agentbus erase <session>`: an operator erases a session, as an admin's `DELETE /sessions/{id}?erase=true` does.

It writes the database directly (`projections.erasure`), so it works on a
stopped system too. The erasure is recorded as the operator's (`cli:<login>`);
the session's commands and uploads go when a worker relays the tombstone
(at once on a running system, at the next start on a stopped one).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

import msgspec

from projections.erasure import erase_session
from schemas import InvalidId, validate_id

from .database import database, database_url
from .settings import Settings


class ErasedReceipt(msgspec.Struct, frozen=True, kw_only=True):
    session_id: str
    position: int
    """The tombstone's position in the log."""
    events_erased: int
    uploads: int
    """How many uploads its messages named (a worker deletes them)."""


def operator() -> str:
    """Who an erasure from the command line is recorded as."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name (a container's uid without a passwd entry)
        return "cli"


def cmd_erase(args: argparse.Namespace, settings: Settings) -> int:
    """Erase one session; print what was erased as JSON (exit 2 if it has nothing to erase)."""
    try:
        session_id = validate_id(args.session)
    except InvalidId as exc:
        raise SystemExit(f"agentbus: {exc}") from None

    async def main(url: str) -> ErasedReceipt | None:
        async with database(url, settings.subject_prefix) as engine:
            erased = await erase_session(engine, session_id, by=operator())
        if erased is None:
            return None
        tombstone = erased.tombstone
        return ErasedReceipt(
            session_id=session_id,
            position=erased.position,
            events_erased=tombstone.events_erased,
            uploads=len(tombstone.uploads),
        )

    with database_url(args, settings) as url:
        receipt = asyncio.run(main(url))
    if receipt is None:
        print(f"agentbus: session {session_id} has nothing to erase (unknown, or erased already)", file=sys.stderr)
        return 2
    print(msgspec.json.encode(receipt).decode())
    return 0
