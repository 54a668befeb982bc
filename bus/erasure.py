"""What an erased session leaves on NATS: its commands in the command stream, and its uploads.

A worker removes both when it relays the session's tombstone (the log records
the erasure; only workers may touch the command stream). Both are idempotent,
so a tombstone relayed again after a takeover removes nothing more.
"""

from __future__ import annotations

import nats.errors
import nats.js.errors
import structlog

from schemas import validate_id

from .connection import Bus
from .errors import BusError
from .objects import is_upload_name, uploads

logger = structlog.get_logger("agentbus.bus")


class PurgeFailed(BusError):
    """The command stream did not purge a session's commands (JetStream down or refusing)."""

    def __init__(self, session_id: str, reason: str) -> None:
        super().__init__(f"purge the commands of session {session_id}: {reason}")
        self.session_id = session_id
        self.reason = reason


def session_command_filters(bus: Bus, session_id: str) -> tuple[str, str]:
    """The subjects a session's commands are stored under: every layout's (`<prefix>.part<g>.<n>.session.<sid>.cmd`,
    see `schemas.layout`) and an unpartitioned stream's (`<prefix>.session.<sid>.cmd`)."""
    sid = validate_id(session_id)
    prefix = bus.subjects.prefix
    return f"{prefix}.*.*.session.{sid}.cmd", bus.subjects.session_cmd(sid)


async def purge_session_commands(bus: Bus, session_id: str) -> None:
    """Remove every command of `session_id` from the command stream, of every layout, acknowledged or not."""
    js = bus.nc.jetstream()
    for subject in session_command_filters(bus, session_id):
        try:
            await js.purge_stream(bus.subjects.cmd_stream, subject=subject)
        except nats.js.errors.NotFoundError:
            return  # no command stream: nothing was ever stored
        except (TimeoutError, nats.errors.Error) as exc:
            raise PurgeFailed(session_id, str(exc) or type(exc).__name__) from None


async def erase_session_traces(bus: Bus, session_id: str, upload_names: list[str]) -> None:
    """Purge the session's commands and delete the uploads its messages named (those that still exist)."""
    await purge_session_commands(bus, session_id)
    bucket = uploads(bus)
    deleted = [name for name in upload_names if is_upload_name(name) and await bucket.delete(name)]
    logger.info("session_traces_erased", session_id=session_id, uploads_deleted=len(deleted))
