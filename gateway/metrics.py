"""`/metrics` and what `/readyz` reads: the gateway's counters, the command stream's backlog, the lags.

Prometheus text format. The relay's lag is the log head minus the relay's
checkpoint: the events committed but not yet on the live subjects.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from bus import BusError
from bus.commands import ConsumerBacklog, command_backlog
from projections import EventLogError

from .context import GatewayContext

RELAY_CHECKPOINT = "nats_relay"
"""The relay's checkpoint (one per relay partition, `nats_relay.p<n>`, once the relay is partitioned)."""


async def relay_lag(ctx: GatewayContext) -> tuple[int, int]:
    """Return the log head and how many events after the relay's checkpoint it is (`EventLogError` if unreadable)."""
    head = await ctx.event_log.last_position()
    relayed = await ctx.read_models.checkpoint(RELAY_CHECKPOINT)
    return head, max(head - relayed, 0)


def _gauge(name: str, value: int, kind: str = "gauge") -> list[str]:
    return [f"# TYPE {name} {kind}", f"{name} {value}"]


def _backlog_lines(backlog: list[ConsumerBacklog]) -> list[str]:
    lines = ["# TYPE agentbus_commands_pending gauge"]
    lines += [f'agentbus_commands_pending{{consumer="{c.consumer}"}} {c.pending}' for c in backlog]
    lines += ["# TYPE agentbus_commands_ack_pending gauge"]
    lines += [f'agentbus_commands_ack_pending{{consumer="{c.consumer}"}} {c.ack_pending}' for c in backlog]
    return lines


async def metrics(request: Request) -> Response:
    ctx: GatewayContext = request.app.state.ctx
    counters = ctx.metrics
    lines = [
        *_gauge("agentbus_ws_open", counters.ws_open),
        *_gauge("agentbus_ws_accepted_total", counters.ws_accepted_total, "counter"),
        *_gauge("agentbus_ws_frames_sent_total", counters.ws_frames_sent_total, "counter"),
        *_gauge("agentbus_commands_published_total", counters.commands_published_total, "counter"),
        *_gauge("agentbus_commands_failed_total", counters.commands_failed_total, "counter"),
    ]
    try:
        lines += _backlog_lines(await command_backlog(ctx.bus))
    except BusError as exc:
        lines += [f"# the command stream is unreadable: {exc}"]
    try:
        head, lag = await relay_lag(ctx)
        projected = await ctx.read_models.checkpoint()
    except EventLogError:
        lines += ["# the event log is unreachable: positions unknown"]
    else:
        lines += [
            *_gauge("agentbus_log_position", head),
            *_gauge("agentbus_read_models_lag", max(head - projected, 0)),
            *_gauge("agentbus_relay_lag", lag),
        ]
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
