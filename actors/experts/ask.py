"""How a board or team asks one of its experts: a request over NATS, retried when its expert is gone.

Any worker serving experts may take a request. While it answers, it reports
every `WORKING_INTERVAL` seconds that it is still working; a caller that hears
nothing for `PRESUMED_DEAD` seconds after such a report presumes that worker
died and asks again (another worker takes it), so a kill -9 mid-speech costs
seconds, not the generation timeout. A worker of an older release sends no
reports: its requests wait for the timeout, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable

import msgspec
import structlog

from bus import Bus, RequestFailed
from schemas import ErrorReply
from schemas.experts import ExpertAnswer, ExpertReply, ExpertRequest, ExpertWorking, expert_replies, expert_working

logger = structlog.get_logger("agentbus.experts")

WORKING_INTERVAL = 1.0
"""Seconds between an expert's reports that it is still answering."""
PRESUMED_DEAD = 4.0
"""Seconds without a report after which the caller asks again."""

REFUSED_CALLS = frozenset({"quota_exceeded", "quota_unavailable"})
"""The codes of an expert that did not call its model at all: asking again would be refused again."""


class CallRefused(RequestFailed):
    """The expert refused to call its model: over quota, or the quota store did not answer (`refusal` says)."""

    def __init__(self, subject: str, refusal: ErrorReply) -> None:
        super().__init__(subject, refusal.message)
        self.refusal = refusal


async def ask_expert(
    bus: Bus,
    request: ExpertRequest,
    *,
    attempts: int,
    margin: float,
    before_retry: Callable[[ExpertRequest], Awaitable[None]] | None = None,
    fresh_segments: bool = False,
) -> ExpertAnswer:
    """Ask an expert, `attempts` times at most: a worker serving experts may have just died.

    The expert cuts its own generation at the request's timeout, so each wait
    is that plus `margin` seconds: a retry never queues behind a stream still
    running. `before_retry` gets the attempt that went without an answer
    before the next one is made (it resets that attempt's chunks; an expert
    that answers with an error resets its own). With `fresh_segments` each
    attempt streams under a segment of its own (a board's speech); otherwise
    under the request's (a team's phase, which a reset restarts). Raises
    `RequestFailed` when no attempt got an answer, `CallRefused` at once when
    the expert refused the call for want of quota.
    """
    subject = bus.subjects.actor("expert", request.expert_id)
    wait = (request.timeout or 0.0) + margin
    call = request
    answered = True
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            await asyncio.sleep(0.5 * (attempt - 1))
            # An expert that answered (with an error) reset its own chunks; one that went silent could not.
            if before_retry is not None and not answered:
                await before_retry(call)
        segment = uuid.uuid4().hex[:12] if fresh_segments else request.segment
        call = msgspec.structs.replace(request, call_id=uuid.uuid4().hex, segment=segment)
        try:
            reply = await _call(bus, subject, call, wait)
            answered = True
        except RequestFailed as exc:
            answered = False
            if attempt == attempts:
                raise
            logger.warning("expert_asked_again", expert=request.expert.name, attempt=attempt + 1, reason=exc.reason)
            continue
        match reply:
            case ExpertAnswer():
                return reply
            case ErrorReply(code=code) if code in REFUSED_CALLS:
                raise CallRefused(subject, reply)
            case ErrorReply(message=message) if attempt == attempts:
                raise RequestFailed(subject, message)
    raise RequestFailed(subject, "no attempts configured")


async def _call(bus: Bus, subject: str, request: ExpertRequest, wait: float) -> ExpertReply:
    """One request, given up early (`RequestFailed`) when the expert's reports stop."""
    reports = await bus.subscribe(bus.subjects.actor("expert_call", request.call_id), expert_working)
    heard = asyncio.Event()
    reported = False

    async def listen() -> None:
        async for _ in reports:
            heard.set()

    listener = asyncio.create_task(listen())
    reply = asyncio.create_task(bus.request(subject, request, expert_replies, timeout=wait))
    try:
        while True:
            heard.clear()
            done, _ = await asyncio.wait([reply], timeout=PRESUMED_DEAD)
            if done:
                return reply.result()
            if heard.is_set():
                reported = True
            elif reported:
                raise RequestFailed(subject, f"its worker stopped reporting for {PRESUMED_DEAD:g}s")
    finally:
        reply.cancel()
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, RequestFailed):
            await reply
        await reports.close()


def working(request: ExpertRequest) -> ExpertWorking | None:
    """The report an expert sends while it answers `request`, or None if its caller wants none."""
    if not request.call_id:
        return None
    return ExpertWorking(call_id=request.call_id, worker=WORKER, answering=type(request).__name__)


WORKER = f"{socket.gethostname()}:{os.getpid()}"
