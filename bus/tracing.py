"""OpenTelemetry spans around each hop, and the W3C trace context carried across processes.

Tracing is off until a process sets up a tracer provider (`cli.tracing`, from
the standard `OTEL_*` variables) and calls `enable()`. Until then every helper
returns at once: no span is started, no context captured, no header added, so
a process that does not trace pays one boolean test per hop.

Spans come in three kinds of start: a `root` where a user's request enters (the
gateway), a `child` of whatever span is current (only inside a traced
operation, never a trace of its own), and one `following` a context carried
from elsewhere: NATS headers (`inject`/`extract`), an actor's letter
(`captured`), or an event's `meta.traceparent` (`from_traceparent`). Callers
set attributes only when `span.is_recording()`, so none is built for nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from contextlib import AbstractContextManager

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind

__all__ = [
    "Context",
    "SpanKind",
    "captured",
    "child",
    "enable",
    "enabled",
    "extract",
    "following",
    "from_traceparent",
    "inject",
    "root",
]

_tracer = trace.get_tracer("agentbus")
"""A proxy until the provider is set, so this module can be imported before `cli.tracing` runs."""
_OFF: AbstractContextManager[Span] = contextlib.nullcontext(trace.INVALID_SPAN)
_on = False


def enable() -> None:
    """Turn tracing on in this process (its tracer provider is set)."""
    global _on
    _on = True


def enabled() -> bool:
    return _on


def root(name: str, *, kind: SpanKind = SpanKind.SERVER) -> AbstractContextManager[Span]:
    """A span that starts a trace (a request entering agentbus), made current."""
    if not _on:
        return _OFF
    return _tracer.start_as_current_span(name, context=Context(), kind=kind)


def child(name: str, *, kind: SpanKind = SpanKind.INTERNAL) -> AbstractContextManager[Span]:
    """A span under the current one, made current; none outside a recorded trace."""
    if not _on or not _sampled():
        return _OFF
    return _tracer.start_as_current_span(name, kind=kind)


def following(name: str, parent: Context | None, *, kind: SpanKind = SpanKind.INTERNAL) -> AbstractContextManager[Span]:
    """A span under `parent` (a context carried from another process or task), made current; none without one."""
    if not _on or parent is None:
        return _OFF
    return _tracer.start_as_current_span(name, context=parent, kind=kind)


def inject(headers: dict[str, str] | None = None) -> dict[str, str] | None:
    """`headers` plus the current trace context (`traceparent`), when a traced operation is current."""
    if not _on or not _sampled():
        return headers
    carrier = dict(headers or {})
    propagate.inject(carrier)
    return carrier


def extract(headers: Mapping[str, str] | None) -> Context | None:
    """The trace context a NATS message's headers carry, or None (off, or none sent)."""
    if not _on or not headers or "traceparent" not in headers:
        return None
    return propagate.extract(headers)


def from_traceparent(value: str | None) -> Context | None:
    """The context a stored `traceparent` names, or None."""
    if not _on or not value:
        return None
    return propagate.extract({"traceparent": value})


def captured() -> Context | None:
    """The current context, to carry into another task (an actor's mailbox); None outside a trace."""
    if not _on or not _sampled():
        return None
    return otel_context.get_current()


def _sampled() -> bool:
    """Whether the current span belongs to a trace being recorded.

    Not `is_recording()`: a driver task goes on in the context of the handler
    that started it, whose span has ended by then; its work is still that trace's.
    """
    context = trace.get_current_span().get_span_context()
    return context.is_valid and context.trace_flags.sampled
