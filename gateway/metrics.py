"""`/metrics`: what a gateway has done, and how far the read models trail the log (Prometheus text format)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from projections import EventLogError

from .context import GatewayContext


async def metrics(request: Request) -> Response:
    ctx: GatewayContext = request.app.state.ctx
    counters = ctx.metrics
    lines = [
        "# TYPE agentbus_ws_open gauge",
        f"agentbus_ws_open {counters.ws_open}",
        "# TYPE agentbus_ws_accepted_total counter",
        f"agentbus_ws_accepted_total {counters.ws_accepted_total}",
        "# TYPE agentbus_ws_frames_sent_total counter",
        f"agentbus_ws_frames_sent_total {counters.ws_frames_sent_total}",
        "# TYPE agentbus_commands_published_total counter",
        f"agentbus_commands_published_total {counters.commands_published_total}",
        "# TYPE agentbus_commands_failed_total counter",
        f"agentbus_commands_failed_total {counters.commands_failed_total}",
    ]
    try:
        head = await ctx.event_log.last_position()
        projected = await ctx.read_models.checkpoint()
    except EventLogError:
        lines += ["# the event log is unreachable: positions unknown"]
    else:
        lines += [
            "# TYPE agentbus_log_position gauge",
            f"agentbus_log_position {head}",
            "# TYPE agentbus_read_models_lag gauge",
            f"agentbus_read_models_lag {max(head - projected, 0)}",
        ]
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
