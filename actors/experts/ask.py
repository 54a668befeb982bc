"""How a board or team asks one of its experts: a request over NATS, retried a few times."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bus import Bus, RequestFailed
from schemas import ErrorReply
from schemas.experts import ExpertAnswer, ExpertRequest, expert_replies


async def ask_expert(
    bus: Bus,
    request: ExpertRequest,
    *,
    attempts: int,
    margin: float,
    before_retry: Callable[[], Awaitable[None]] | None = None,
) -> ExpertAnswer:
    """Ask an expert, `attempts` times at most: a worker serving experts may have just died.

    The expert cuts its own generation at the request's timeout, so each wait
    is that plus `margin` seconds: a retry never queues behind a stream still
    running. `before_retry` runs before each new attempt (a team resets the
    attempt's chunks there). Raises `RequestFailed` when no attempt got an answer.
    """
    subject = bus.subjects.actor("expert", request.expert_id)
    wait = (request.timeout or 0.0) + margin
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            await asyncio.sleep(0.5 * (attempt - 1))
            if before_retry is not None:
                await before_retry()
        try:
            reply = await bus.request(subject, request, expert_replies, timeout=wait)
        except RequestFailed:
            if attempt == attempts:
                raise
            continue
        match reply:
            case ExpertAnswer():
                return reply
            case ErrorReply(message=message) if attempt == attempts:
                raise RequestFailed(subject, message)
    raise RequestFailed(subject, "no attempts configured")
