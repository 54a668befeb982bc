"""The append's span, and the trace context it leaves in the events' meta for the relay to continue.

Only the OpenTelemetry API is used here (the projections import no bus code):
an append is traced only as part of a recorded trace, whose span is current
when it is called; otherwise nothing is started and the events are untouched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import msgspec
from opentelemetry import trace
from opentelemetry.trace import SpanContext, SpanKind

from ._append_request import NewEvent

_tracer = trace.get_tracer("agentbus.projections")


def traced() -> bool:
    """Whether the caller is within a recorded trace (tracing is on and this operation is sampled).

    The current span may have ended (a driver task started by a handler goes on in its context): its trace has not.
    """
    context = trace.get_current_span().get_span_context()
    return context.is_valid and context.trace_flags.sampled


@contextlib.contextmanager
def append_span(stream: str, batch: tuple[NewEvent, ...]) -> Iterator[tuple[NewEvent, ...]]:
    """Span one append (queued and committed) and give its events this span's trace context."""
    with _tracer.start_as_current_span("eventlog append", kind=SpanKind.CLIENT) as span:
        span.set_attributes({"db.system": "postgresql", "agentbus.stream": stream, "agentbus.events": len(batch)})
        yield _with_traceparent(batch, span.get_span_context())


def _with_traceparent(batch: tuple[NewEvent, ...], span: SpanContext) -> tuple[NewEvent, ...]:
    value = f"00-{span.trace_id:032x}-{span.span_id:016x}-{int(span.trace_flags):02x}"
    return tuple(
        msgspec.structs.replace(new, meta=msgspec.structs.replace(new.meta, traceparent=value)) for new in batch
    )
