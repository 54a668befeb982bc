"""Tracing of a serving process (`up`, `worker`, `gateway`): a tracer provider from the standard `OTEL_*` variables.

Off unless `OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `console`, or
both, comma-separated) and `OTEL_SDK_DISABLED` is not `true`: then nothing of
the SDK is imported and `bus.tracing` stays off, so the spans cost nothing.
The SDK itself reads the rest of the standard variables: `OTEL_SERVICE_NAME`
and `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`(`_ARG`), `OTEL_BSP_*`
for batching, and `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT`, `_HEADERS`,
`_TIMEOUT` for the OTLP/HTTP exporter, which the `otlp` extra installs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from bus import tracing

EXPORTERS = ("otlp", "console")
OTLP_EXTRA = "pip install 'agentbus[otlp]'"


def exporters_named() -> list[str]:
    """The exporters `OTEL_TRACES_EXPORTER` names (none: tracing is off); an unknown one stops the start."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [name.strip().lower() for name in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",")]
    names = [name for name in names if name and name != "none"]
    for name in names:
        if name not in EXPORTERS:
            raise SystemExit(
                f"agentbus: OTEL_TRACES_EXPORTER names {name!r}; agentbus exports to {', '.join(EXPORTERS)}"
            )
    return names


def start_tracing(service: str) -> Callable[[], None] | None:
    """Set up this process's tracer provider if the environment asks for one; return what flushes and stops it."""
    names = exporters_named()
    if not names:
        return None
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME, when set, names the process instead (attributes given here would win over it).
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
    provider = TracerProvider(resource=Resource.create(attributes))
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    trace.set_tracer_provider(provider)
    tracing.enable()
    return provider.shutdown


def _exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol not in (None, "", "http/protobuf"):
        raise SystemExit(f"agentbus: OTLP over {protocol} is not supported; use http/protobuf (the default)")
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise SystemExit(f"agentbus: OTEL_TRACES_EXPORTER=otlp needs the OTLP exporter: {OTLP_EXTRA}") from None
    return OTLPSpanExporter()
