"""The one table of the run: each agentbus figure beside a peer framework's or a raw floor's, with the ratio.

`Collected` is what the sections of `bench.run` measured (any of them may be
missing: `--only` skips some, a peer may be unavailable); `rows` makes the
table, `results` the JSON written to `bench/results.json`.

    python -m bench.compare bench/results.json [another.json …]   # the README's Markdown table
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ._stats import Summary, table
from .append import Case
from .floors import Floors
from .peer_runs import PeerResult
from .workers import WorkersRun, workers_results


@dataclass(frozen=True, slots=True)
class BoardFigures:
    overhead_per_speech_ms: float  # (p50 wall - p50 baseline) / speeches
    wall: Summary
    baseline: Summary


@dataclass(frozen=True, slots=True)
class TeamFigures:
    phases: int
    overhead_per_phase_ms: float  # (p50 wall - p50 baseline) / phases
    wall: Summary
    baseline: Summary


@dataclass(slots=True)
class Collected:
    first_token: Summary | None = None
    final_answer: Summary | None = None
    appends: list[Case] | None = None
    board: BoardFigures | None = None
    team: TeamFigures | None = None
    floors: Floors | None = None
    peers: list[PeerResult] = field(default_factory=list)
    workers: list[WorkersRun] | None = None
    hops: dict[str, Any] | None = None
    """The per-hop breakdown of a turn and a board step (`bench.hops.hops_results`)."""

    def peer(self, key: str) -> PeerResult | None:
        return next((p for p in self.peers if p.peer.key == key), None)


@dataclass(frozen=True, slots=True)
class Row:
    figure: str
    unit: str
    agentbus: float | None
    other: str  # what it is compared with
    value: float | None
    reason: str = ""  # why `value` is missing

    @property
    def ratio(self) -> float | None:
        if self.agentbus is None or not self.value:
            return None
        return self.agentbus / self.value


def rows(c: Collected) -> list[Row]:
    """Every comparison the issue names, in a fixed order; missing figures stay in the table as gaps."""
    out: list[Row] = []
    overhead = c.board.overhead_per_speech_ms if c.board else None
    for key, other, path in (
        ("langgraph", "LangGraph + PostgresSaver, per durable step", ("per_step_ms", "p50")),
        ("dbos", "DBOS workflow, per durable step", ("per_step_ms", "p50")),
        ("autogen", "AutoGen RoundRobinGroupChat, per speech (in memory)", ("per_speech_ms", "p50")),
    ):
        value, reason = _peer_value(c.peer(key), *path)
        out.append(Row("board overhead per speech", "ms", overhead, other, value, reason))
    floors = c.floors
    for pct in ("p50", "p99"):
        mine = getattr(c.first_token, pct) if c.first_token else None
        for other, summary in (
            ("durable floor: JetStream publish+ack, PG commit", floors.durable_turn if floors else None),
            ("raw nats-py request/reply", floors.request_reply if floors else None),
        ):
            value = getattr(summary, pct) if summary else None
            out.append(
                Row(f"ws -> first token {pct}", "ms", mine, f"{other} {pct}", value, "" if summary else "not run")
            )
    cases = {case.name[:3]: case for case in c.appends or []}
    for case_key, label, es_path in (
        ("(a)", "appends, 1 event/append", ("single", "events_per_second")),
        ("(c)", "appends, 100 events/append", ("batch", "events_per_second")),
    ):
        case = cases.get(case_key)
        mine = case.eventlog.events_per_second if case else None
        raw = case.raw.events_per_second if case else None
        out.append(Row(label, "events/s", mine, "raw asyncpg, same rows", raw, "" if case else "not run"))
        value, reason = _peer_value(c.peer("eventsourcing"), *es_path)
        saves = "1 event/save" if case_key == "(a)" else "saves of 100"
        out.append(Row(label, "events/s", mine, f"eventsourcing PostgreSQL recorder, {saves}", value, reason))
    return out


def _peer_value(result: PeerResult | None, *path: str) -> tuple[float | None, str]:
    if result is None:
        return None, "not run"
    if result.figures is None:
        return None, f"unavailable: {result.reason}"
    return result.get(*path), ""


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit != "ms":
        return f"{value:,.0f}"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def render(table_rows: list[Row]) -> str:
    """The table as the run prints it (ratio = agentbus / the other: for ms lower is better, for events/s higher)."""
    cells = [
        [
            r.figure,
            r.unit,
            _number(r.agentbus, r.unit),
            r.other,
            r.reason if r.value is None and r.reason else _number(r.value, r.unit),
            f"{r.ratio:.2f}x" if r.ratio is not None else "n/a",
        ]
        for r in table_rows
    ]
    return table(
        "agentbus beside its peers and the raw floors, same nats-server and PostgreSQL, same run "
        "(ratio = agentbus / other)",
        ["figure", "unit", "agentbus", "peer / raw floor", "value", "ratio"],
        cells,
    )


def markdown(runs: list[dict[str, Any]]) -> str:
    """The table of one or more results.json files in Markdown, for the README: one value and ratio column per run."""
    first = runs[0]["table"]
    head = "| figure | agentbus | compared with | value | ratio |"
    if len(runs) > 1:
        numbered = [f"{name} ({i})" for i in range(1, len(runs) + 1) for name in ("agentbus", "value", "ratio")]
        head = "| figure | compared with | " + " | ".join(numbered) + " |"
    lines = [head, "|---|" + "---|" * (head.count("|") - 2)]
    for index, row in enumerate(first):
        figure = f"{row['figure']} ({row['unit']})".replace("->", "→")
        cells = []
        for run in runs:
            r = run["table"][index]
            value = _number(r["value"], r["unit"]) if r["value"] is not None else r.get("missing", "—")
            ratio = f"{r['ratio']:.2f}×" if r["ratio"] is not None else "n/a"
            cells.append((_number(r["agentbus"], r["unit"]), value, ratio))
        if len(runs) == 1:
            mine, value, ratio = cells[0]
            lines.append(f"| {figure} | {mine} | {row['other']} | {value} | {ratio} |")
        else:
            lines.append(f"| {figure} | {row['other']} | " + " | ".join(" | ".join(c) for c in cells) + " |")
    return "\n".join(lines)


def results(c: Collected, table_rows: list[Row], run: dict[str, Any]) -> dict[str, Any]:
    """Everything measured, as JSON-ready data: the run's facts, each section's figures, the table."""
    return {
        **run,
        "agentbus": {
            "ws_first_token_ms": _summary(c.first_token),
            "ws_final_answer_ms": _summary(c.final_answer),
            "appends": [
                {
                    "case": case.name,
                    "eventlog_events_per_second": case.eventlog.events_per_second,
                    "raw_events_per_second": case.raw.events_per_second,
                    "eventlog_append_ms": asdict(case.eventlog.latency),
                    "raw_append_ms": asdict(case.raw.latency),
                }
                for case in c.appends or []
            ],
            "board": None
            if c.board is None
            else {
                "overhead_per_speech_ms": c.board.overhead_per_speech_ms,
                "wall_ms": asdict(c.board.wall),
                "baseline_ms": asdict(c.board.baseline),
            },
            "team": None
            if c.team is None
            else {
                "phases": c.team.phases,
                "overhead_per_phase_ms": c.team.overhead_per_phase_ms,
                "wall_ms": asdict(c.team.wall),
                "baseline_ms": asdict(c.team.baseline),
            },
        },
        "floors": None
        if c.floors is None
        else {
            "request_reply_ms": asdict(c.floors.request_reply),
            "durable_turn_ms": asdict(c.floors.durable_turn),
            "jetstream_publish_ack_ms": asdict(c.floors.publish_ack),
            "postgres_commit_ms": asdict(c.floors.commit),
        },
        "peers": {
            p.peer.key: {"label": p.peer.label, "wall_seconds": round(p.wall, 2), **(p.figures or {})}
            if p.figures is not None
            else {"label": p.peer.label, "unavailable": p.reason}
            for p in c.peers
        },
        "workers": None if not c.workers else workers_results(c.workers),
        "hops": c.hops,
        "table": [
            {
                "figure": r.figure,
                "unit": r.unit,
                "agentbus": r.agentbus,
                "other": r.other,
                "value": r.value,
                "ratio": r.ratio,
                **({"missing": r.reason} if r.value is None else {}),
            }
            for r in table_rows
        ],
    }


def _summary(summary: Summary | None) -> dict[str, float] | None:
    return None if summary is None else asdict(summary)


if __name__ == "__main__":
    print(markdown([json.loads(Path(path).read_text()) for path in sys.argv[1:] or ["bench/results.json"]]))
