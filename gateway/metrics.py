"""`/metrics` and what `/readyz` reads: the gateway's counters, the command stream's backlog, the lags.

Prometheus text format. The relay's lag is the log head minus the smallest of
the relay's checkpoints: the events committed but not yet on the live subjects.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from bus import BusError
from bus.commands import ConsumerBacklog, command_backlog
from projections import EventLogError
from schemas import Layout
from schemas.layout import checkpoint_of_consumer

from .context import GatewayContext


def relay_checkpoints(backlog: list[ConsumerBacklog]) -> list[str]:
    """Name the relay's checkpoints: one per command partition, as there is one consumer per partition.

    A stand-in for reading every checkpoint named `nats_relay*` (the projections have no such read yet).
    """
    named = {name for c in backlog if (name := checkpoint_of_consumer(c.consumer)) is not None}
    return sorted(named) or [Layout(0).checkpoint(0)]


async def relay_lag(ctx: GatewayContext, backlog: list[ConsumerBacklog]) -> tuple[int, int]:
    """Return the log head and how far the slowest relay partition trails it (`EventLogError` if unreadable)."""
    head = await ctx.event_log.last_position()
    relayed = min([await ctx.read_models.checkpoint(name) for name in relay_checkpoints(backlog)])
    return head, max(head - relayed, 0)


def _gauge(name: str, value: int, kind: str = "gauge") -> list[str]:
    return [f"# TYPE {name} {kind}", f"{name} {value}"]


def _backlog_lines(backlog: list[ConsumerBacklog]) -> list[str]:
    lines = ["# TYPE agentbus_commands_pending gauge"]
    lines += [f'agentbus_commands_pending{{consumer="{c.consumer}"}} {c.pending}' for c in backlog]
    lines += ["# TYPE agentbus_commands_ack_pending gauge"]
    lines += [f'agentbus_commands_ack_pending{{consumer="{c.consumer}"}} {c.ack_pending}' for c in backlog]
    return lines


def _skipped_lines(name: str, counts: Mapping[tuple[str, int], int]) -> list[str]:
    lines = [f"# TYPE {name} counter"]
    lines += [f'{name}{{type="{_label(t)}",schema="{schema}"}} {n}' for (t, schema), n in sorted(counts.items())]
    return lines


def _label(value: str) -> str:
    """Escape a label value: an event type comes from the log, where a newer worker may have written anything."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


async def metrics(request: Request) -> Response:
    ctx: GatewayContext = request.app.state.ctx
    counters = ctx.metrics
    lines = [
        *_gauge("agentbus_ws_open", counters.ws_open),
        *_gauge("agentbus_ws_accepted_total", counters.ws_accepted_total, "counter"),
        *_gauge("agentbus_ws_frames_sent_total", counters.ws_frames_sent_total, "counter"),
        *_gauge("agentbus_commands_published_total", counters.commands_published_total, "counter"),
        *_gauge("agentbus_commands_failed_total", counters.commands_failed_total, "counter"),
        *_gauge("agentbus_ws_closed_slow_total", counters.ws_closed_slow_total, "counter"),
        *_gauge("agentbus_relay_subscriptions", ctx.fanout.subscriptions),
        *_gauge("agentbus_relay_items_total", ctx.fanout.items_total, "counter"),
        *_gauge("agentbus_relay_resyncs_total", ctx.fanout.resyncs_total, "counter"),
        *_gauge("agentbus_relay_unproven_items_total", ctx.fanout.unproven_total, "counter"),
        # This gateway's reads of the log (history, sockets' catch-up) that went past an event it cannot read.
        *_skipped_lines("agentbus_gateway_skipped_events_total", ctx.event_log.skipped.counts),
    ]
    backlog: list[ConsumerBacklog] | None = None
    try:
        backlog = await command_backlog(ctx.bus)
    except BusError as exc:
        lines += [f"# the command stream is unreadable: {exc}"]
    else:
        lines += _backlog_lines(backlog)
    try:
        head = await ctx.event_log.last_position()
        projected = await ctx.read_models.checkpoint()
        usage = await ctx.read_models.usage()
        skipped = await ctx.read_models.skipped_events()
        relay = None if backlog is None else await relay_lag(ctx, backlog)
    except EventLogError:
        lines += ["# the event log is unreachable: positions unknown"]
    else:
        lines += [
            *_gauge("agentbus_log_position", head),
            *_gauge("agentbus_read_models_lag", max(head - projected, 0)),
        ]
        if relay is not None:  # which checkpoints are the relay's is known from the command consumers
            lines += _gauge("agentbus_relay_lag", relay[1])
        lines += [
            *_gauge("agentbus_model_calls_total", usage.calls, "counter"),
            *_gauge("agentbus_model_prompt_tokens_total", usage.prompt_tokens, "counter"),
            *_gauge("agentbus_model_completion_tokens_total", usage.completion_tokens, "counter"),
            *_gauge("agentbus_model_answers_truncated_total", usage.truncated, "counter"),
            # The events of the log the projector went past (a newer worker's): rebuild once every worker knows them.
            *_skipped_lines("agentbus_projector_skipped_events_total", {(c.type, c.schema): c.events for c in skipped}),
        ]
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
