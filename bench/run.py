"""Run every benchmark once and print figures with their raw baselines.

    python -m bench.run [--turns N]      (also: make bench, agentbus bench)

1. WebSocket message → first token latency of `agentbus up` (a subprocess),
   against raw nats-py request/reply between two processes.
2. Event append throughput of `projections.EventLog`, against raw asyncpg inserts.
3. Board meeting (5 experts, 3 rounds, offline provider, delay 0): wall time and
   overhead per speech, against the same generations and raw inserts in-process.
   `--only board` runs this one alone.

Services are the ones named by AGENTBUS_NATS_URL / AGENTBUS_DATABASE_URL, else an
embedded nats-server and PostgreSQL in a temporary directory; every process and
scratch database started here is stopped or dropped on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path

from cli.settings import configure_logging

from ._services import SUBJECT_PREFIX, Services, agentbus_up, scratch_database, services
from ._stats import LATENCY_HEADERS, Summary, ratio, table
from .append import Counts, measure_appends
from .board import EXPERTS, ROUNDS, SPEECHES, STEPS, measure_boards, measure_raw
from .latency import echo_responder, measure_request_reply, measure_turns, split_summary


def main(turns: int = 1000, *, only: str | None = None, boards: int = 5) -> int:
    """Run the benchmarks (`only="board"`: the board benchmark alone); return 0, 1 on failure, 130 when interrupted."""
    if turns < 10:
        raise ValueError("turns must be at least 10")
    configure_logging("warning")  # our own log lines go to stderr, never into the tables
    print(f"agentbus benchmarks — command: {_command(turns, only, boards)}")
    print(f"  cwd {os.getcwd()} | python {platform.python_version()} | {os.cpu_count()} CPUs | {platform.platform()}")
    workdir = Path(tempfile.mkdtemp(prefix="agentbus-bench-"))
    restore = _sigterm_as_interrupt()
    started = time.monotonic()
    try:
        with services(workdir) as svc:
            print(f"  services: {svc.origin}")
            if only is None:
                _latency(svc, workdir, turns)
                _appends(svc)
            _boards(svc, workdir, boards)
        print(f"\ntotal wall time {time.monotonic() - started:.1f} s")
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted: everything started was stopped", file=sys.stderr)
        return 130
    except Exception:  # report and fail; the services were stopped by the context managers
        traceback.print_exc()
        return 1
    finally:
        restore()
        shutil.rmtree(workdir, ignore_errors=True)


def _latency(svc: Services, workdir: Path, turns: int) -> None:
    subject = f"{SUBJECT_PREFIX}.bench.echo.{uuid.uuid4().hex}"
    with echo_responder(svc.nats_url, subject):
        raw = asyncio.run(measure_request_reply(svc.nats_url, subject, turns))
    with (
        scratch_database(svc.database_url, "up") as database_url,
        agentbus_up(workdir, svc.nats_url, database_url) as system,
    ):
        print(f"\n[1] system under test: {system.command}")
        print(f"    up (endpoints.json written) after {system.started_in:.2f} s; gateway {system.endpoints.http_url}")
        result = asyncio.run(measure_turns(system.endpoints, turns, system.cpu_seconds))

    first = Summary.of_seconds(result.first_token)
    final = Summary.of_seconds(result.final_answer)
    baseline = Summary.of_seconds(raw.samples)
    print()
    print(
        table(
            f"WebSocket message -> first token: {turns} turns in sequence on one session "
            f"(after {result.warmup} warm-up turns), offline provider, delay 0",
            ["latency", *LATENCY_HEADERS],
            [
                ["ws message -> first token", *first.cells()],
                ["ws message -> final_answer", *final.cells()],
                ["raw nats-py request/reply (baseline)", *baseline.cells()],
            ],
        )
    )
    head, tail = split_summary(result.first_token)
    print(
        f"first token, first vs last tenth of the turns: p50 {head.p50:.3f} -> {tail.p50:.3f} ms, "
        f"p99 {head.p99:.3f} -> {tail.p99:.3f} ms ({head.n} turns each)"
    )
    print(f"turns/s (whole sequence): {result.turns_per_second:.1f} ({turns} turns in {result.elapsed:.2f} s)")
    print(
        f"CPU per turn: agentbus up {result.server_cpu / turns * 1000:.2f} ms "
        f"({result.server_cpu / result.elapsed:.0%} of one core over the sequence), "
        f"bench client {result.client_cpu / turns * 1000:.2f} ms"
    )
    print(f"raw request/reply/s:      {raw.per_second:.1f} ({turns} requests in {raw.elapsed:.2f} s)")
    print(f"ratio first-token p50 / raw request-reply p50 = {ratio(first.p50, baseline.p50)}")
    print(f"ratio final_answer p50 / raw request-reply p50 = {ratio(final.p50, baseline.p50)}")
    print(
        "baseline: one nats-py client sends the same-size JSON to an echo responder in another process "
        "(bench._echo) on the same nats-server, one request at a time"
    )


def _appends(svc: Services) -> None:
    counts = Counts()
    with scratch_database(svc.database_url, "append") as database_url:
        cases = asyncio.run(measure_appends(database_url, counts))
    rows = []
    for case in cases:
        for label, measured in (("EventLog.append", case.eventlog), ("raw asyncpg", case.raw)):
            rows.append(
                [
                    case.name,
                    label,
                    str(measured.appends),
                    str(measured.events),
                    f"{measured.elapsed:.2f}",
                    f"{measured.appends_per_second:,.0f}",
                    f"{measured.events_per_second:,.0f}",
                    f"{measured.latency.p50:.3f}",
                    f"{measured.latency.p99:.3f}",
                    ratio(case.eventlog.events_per_second, case.raw.events_per_second)
                    if measured is case.eventlog
                    else "",
                ]
            )
    print()
    print(
        table(
            "Event append throughput on a fresh database (UserMessage, 100-char content)",
            ["case", "writer", "appends", "events", "s", "appends/s", "events/s", "p50 ms", "p99 ms", "EventLog/raw"],
            rows,
        )
    )
    print(
        "raw baseline: bench_raw_events, same columns and indexes as events, bigserial positions; "
        "(a)/(b) one autocommit INSERT per row (1 row = 1 transaction), (b) on 16 connections, "
        f"(c) executemany of {counts.batch_size} rows in one transaction. "
        "EventLog: expected_version checked on every append; (b) goes through the group-commit appender."
    )


def _boards(svc: Services, workdir: Path, boards: int) -> None:
    with scratch_database(svc.database_url, "board") as database_url:
        raw = asyncio.run(measure_raw(database_url, boards))
        with agentbus_up(workdir, svc.nats_url, database_url) as system:
            print(f"\n[3] system under test: {system.command}")
            runs = asyncio.run(measure_boards(system.endpoints, boards))
    wall = Summary.of_seconds([run.wall for run in runs])
    baseline = Summary.of_seconds(raw)
    gaps = Summary.of_seconds([gap for run in runs for gap in run.speech_gaps])
    print()
    print(
        table(
            f"Board meeting, {len(EXPERTS)} experts x {ROUNDS} rounds = {SPEECHES} speeches + {ROUNDS} summaries + 1 conclusion, "
            f"offline provider, delay 0; {boards} boards in sequence on one session (after 1 warm-up board)",
            ["per board", *LATENCY_HEADERS],
            [
                ["ws @board -> final_answer", *wall.cells()],
                ["between recorded speeches", *gaps.cells()],
                ["raw: same generations + raw INSERTs (baseline)", *baseline.cells()],
            ],
        )
    )
    overhead = (wall.p50 - baseline.p50) / SPEECHES
    print(
        f"overhead per speech (p50 wall - p50 baseline) / {SPEECHES} = {overhead:.2f} ms; "
        f"per step ({STEPS} expert requests) {(wall.p50 - baseline.p50) / STEPS:.2f} ms"
    )
    print(f"ratio board wall p50 / baseline p50 = {ratio(wall.p50, baseline.p50)}")
    print(
        "baseline: in this process, the same 19 offline-provider generations on the same prompts (transcripts growing as the "
        "meeting's), then one autocommit asyncpg INSERT per recorded event (22), all in sequence"
    )


def _command(turns: int, only: str | None = None, boards: int = 5) -> str:
    if Path(sys.argv[0]).name == "run.py":
        flags = f" --only {only}" if only else ""
        return f"{shlex.quote(sys.executable)} -m bench.run --turns {turns}{flags} --boards {boards}"
    return " ".join(shlex.quote(arg) for arg in [sys.executable, *sys.argv])


def _sigterm_as_interrupt() -> Callable[[], None]:
    """Make SIGTERM unwind like Ctrl-C, so the services are stopped; return the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=1000, help="measured WebSocket turns (default 1000)")
    parser.add_argument("--boards", type=int, default=5, help="measured board meetings (default 5)")
    parser.add_argument("--only", choices=["board"], help="run only this benchmark")
    return parser.parse_args(argv)


if __name__ == "__main__":
    _args = _parse()
    sys.exit(main(_args.turns, only=_args.only, boards=_args.boards))
