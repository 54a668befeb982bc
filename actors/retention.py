"""The worker's retention sweep: on a timer, erase the sessions closed longer ago than `[retention]` says.

Every worker runs the timer; the sweep's advisory lock lets one sweep at a
time (`projections.retention`), so a sweep goes on when its worker dies and
none runs twice at once. It lives in the worker, not in a command for cron,
so that a configured retention holds without anything else to schedule.
"""

from __future__ import annotations

import asyncio

import structlog

from projections import Engine
from projections.retention import sweep

logger = structlog.get_logger("agentbus.retention")


async def run_retention(engine: Engine, days: float, interval: float) -> None:
    """Erase the sessions closed over `days` days ago now, and again every `interval` seconds, for ever."""
    while True:
        erased = await sweep(engine, days)
        if erased:
            logger.info("sessions_expired", sessions=[done.session_id for done in erased], days=days)
        await asyncio.sleep(interval)
