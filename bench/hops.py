"""Every hop of a chat turn and of a board step, from the spans the real processes export.

`agentbus up` runs with tracing on (`OTEL_TRACES_EXPORTER=otlp`) and exports
to the tiny OTLP/HTTP receiver this process runs (`bench.otlp_receiver`), so
what is measured is the system itself, over the protocol an operator uses.
The bench client sends turns over the WebSocket, then boards; once `up` has
stopped (and flushed its last spans), each span gives one sample of its hop,
and the waits between the hops that cross a queue (JetStream, the log, a live
subject) are read from a child's start against its parent's start or end.
"""

from __future__ import annotations

import asyncio
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._services import Services, agentbus_up, scratch_database
from ._stats import LATENCY_HEADERS, Summary, table
from .board import measure_boards
from .latency import measure_turns
from .otlp_receiver import OtlpReceiver, Span

ROOT = "ws send_message"
STEP = "board step"
TURN_HOPS = [
    ROOT,
    "publish command",
    "take command",
    "session handle",
    "turn handle",
    "llm stream",
    "eventlog append",
    "relay publish",
    "gateway receive",
    "ws send",
]
STEP_HOPS = [
    STEP,
    "bus request",
    "bus serve",
    "expert handle",
    "llm stream",
    "board handle",
    "eventlog append",
    "relay publish",
]


@dataclass(frozen=True, slots=True)
class Gap:
    """The wait between a parent hop and a child hop that crosses a queue."""

    label: str
    parent: str
    child: str
    from_end: bool
    """Measured from the parent's end (it handed over when done), else from its start."""

    def of(self, parent: Span, child: Span) -> float:
        return (child.start_ns - (parent.end_ns if self.from_end else parent.start_ns)) / 1e9


GAPS = [
    Gap("publish -> the worker takes it (JetStream)", "publish command", "take command", False),
    Gap("append committed -> relay publishes (log follow)", "eventlog append", "relay publish", True),
    Gap("relay publishes -> gateway receives (NATS)", "relay publish", "gateway receive", False),
    Gap("gateway receives -> socket sends", "gateway receive", "ws send", False),
    Gap("expert asked -> expert serves (NATS)", "bus request", "bus serve", False),
]


@dataclass(slots=True)
class Hops:
    """Per-hop samples (seconds) of one kind of operation, and how many of them were traced."""

    operations: int = 0
    spans: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    per_operation: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    gaps: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    end_to_end: list[float] = field(default_factory=list)
    """Turns: the root's start to the first token frame sent to the socket."""
    first_token: list[float] = field(default_factory=list)
    """The model call's start to its first piece of text."""

    def summaries(self, names: list[str]) -> list[tuple[str, Summary, float]]:
        rows = []
        for name in names:
            if self.spans.get(name):
                rows.append((name, Summary.of_seconds(self.spans[name]), statistics.fmean(self.per_operation[name])))
        for gap in GAPS:
            if self.gaps.get(gap.label):
                rows.append((gap.label, Summary.of_seconds(self.gaps[gap.label]), 0.0))
        return rows


@dataclass(frozen=True, slots=True)
class HopFigures:
    turn: Hops
    step: Hops
    command: str


def measure_hops(svc: Services, workdir: Path, turns: int, boards: int) -> HopFigures:
    """Run `turns` turns and `boards` boards on a traced `agentbus up`; return the hops of every one after warm-up."""
    receiver = OtlpReceiver()
    try:
        with (
            scratch_database(svc.database_url, "hops") as database_url,
            agentbus_up(workdir, svc.nats_url, database_url, data_dir_name="hops", env=receiver.env()) as system,
        ):
            asyncio.run(measure_turns(system.endpoints, turns, system.cpu_seconds, warmup=10))
            asyncio.run(measure_boards(system.endpoints, boards))
            system.interrupt()  # its last spans are exported as it stops
        spans = list(receiver.spans)
    finally:
        receiver.close()
    traces: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        traces[span.trace_id].append(span)
    roots = sorted((s for s in spans if s.name == ROOT and s.parent_id is None), key=lambda s: s.start_ns)
    turn_traces = [traces[r.trace_id] for r in roots if not any(s.name == STEP for s in traces[r.trace_id])]
    board_traces = [traces[r.trace_id] for r in roots if any(s.name == STEP for s in traces[r.trace_id])]
    turn, step = Hops(), Hops()
    for trace in turn_traces[10:]:  # the warm-up turns are left out
        _collect(turn, trace)
        _end_to_end(turn, trace)
    for trace in board_traces[1:]:  # the warm-up board too
        for each in (s for s in trace if s.name == STEP):
            _collect(step, trace, under=each)
    return HopFigures(turn=turn, step=step, command=system.command)


def _under(span: Span, ancestor: Span, by_id: dict[str, Span]) -> bool:
    while span is not ancestor:
        if span.parent_id is None or span.parent_id not in by_id:
            return False
        span = by_id[span.parent_id]
    return True


def _collect(hops: Hops, trace: list[Span], *, under: Span | None = None) -> None:
    """Add one operation (a trace, or the spans `under` one of its spans): durations by name, waits, first token."""
    hops.operations += 1
    by_id = {s.span_id: s for s in trace}
    counts: dict[str, int] = defaultdict(int)
    for span in trace:
        if under is not None and not _under(span, under, by_id):
            continue
        hops.spans[span.name].append((span.end_ns - span.start_ns) / 1e9)
        counts[span.name] += 1
        if span.name == "llm stream" and "first token" in span.events:
            hops.first_token.append((span.events["first token"] - span.start_ns) / 1e9)
        parent = by_id.get(span.parent_id or "")
        for gap in GAPS:
            if parent is not None and parent.name == gap.parent and span.name == gap.child:
                hops.gaps[gap.label].append(gap.of(parent, span))
    for name, count in counts.items():
        hops.per_operation[name].append(count)


def _end_to_end(hops: Hops, trace: list[Span]) -> None:
    """The root's start to the end of the first socket send under the model call (its first token frame)."""
    by_id = {s.span_id: s for s in trace}
    root = next(s for s in trace if s.parent_id is None)
    model = [s.span_id for s in trace if s.name == "llm stream"]
    sends = [
        s.end_ns
        for s in trace
        if s.name == "ws send" and (receive := by_id.get(s.parent_id or "")) is not None and receive.parent_id in model
    ]
    if sends:
        hops.end_to_end.append((min(sends) - root.start_ns) / 1e9)


def hops_tables(figures: HopFigures) -> str:
    turn, step = figures.turn, figures.step
    turn_rows = _rows(turn, TURN_HOPS)
    if turn.first_token:
        turn_rows.append(["llm stream -> first token", "", *Summary.of_seconds(turn.first_token).cells()])
    if turn.end_to_end:
        turn_rows.append(["ws message -> first token sent (spans)", "", *Summary.of_seconds(turn.end_to_end).cells()])
    headers = ["hop (span or wait)", "per op", *LATENCY_HEADERS]
    return "\n\n".join(
        [
            table(
                f"Hops of a chat turn (WebSocket, offline provider, delay 0): {turn.operations} traced turns; "
                "one row per span name (every span a sample) and per wait across a queue",
                headers,
                turn_rows,
            ),
            table(
                f"Hops of a board step (one expert speech or summary): {step.operations} traced steps",
                headers,
                _rows(step, STEP_HOPS),
            ),
        ]
    )


def _rows(hops: Hops, names: list[str]) -> list[list[str]]:
    return [[name, f"{per:.1f}" if per else "", *summary.cells()] for name, summary, per in hops.summaries(names)]


def hops_results(figures: HopFigures) -> dict[str, Any]:
    """The per-hop p50/p99 (ms) of a turn and of a board step, for bench/results.json."""

    def of(hops: Hops, names: list[str]) -> dict[str, Any]:
        return {
            "traced": hops.operations,
            "hops_ms": {
                name: {"p50": summary.p50, "p99": summary.p99, "n": summary.n, "per_operation": per}
                for name, summary, per in hops.summaries(names)
            },
        }

    turn = of(figures.turn, TURN_HOPS)
    if figures.turn.end_to_end:
        end = Summary.of_seconds(figures.turn.end_to_end)
        turn["first_token_sent_ms"] = {"p50": end.p50, "p99": end.p99}
    return {"command": figures.command, "turn": turn, "board_step": of(figures.step, STEP_HOPS)}
