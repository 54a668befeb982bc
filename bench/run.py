"""Run every benchmark once and print figures with their raw baselines and peers.

    python -m bench.run [--turns N] [--only board|team|sockets|workers|hops|peers]   (also: make bench, agentbus bench)

0. The raw floors of a turn: nats-py request/reply between two processes, and the
   durable floor (a JetStream publish with its stored ack, plus one PostgreSQL commit).
1. WebSocket message → first token latency of `agentbus up` (a subprocess).
2. Event append throughput of `projections.EventLog`, against raw asyncpg inserts.
3. Board meeting (5 experts, 3 rounds, offline provider, delay 0): wall time and
   overhead per speech, against the same generations and raw inserts in-process.
   `--only board` runs this one alone.
3b. Team pipeline (the dev_team: 4 phases, 2 of them concurrent, offline provider,
   delay 0): wall time and overhead per phase, against the same generations and
   raw inserts in-process. `--only team` runs this one alone.
3c. Sockets under load: 200 WebSockets over 50 sessions, frames/s relayed beside raw NATS
   pub→sub, first-token latency under that load, then turns through a kill -9 and restart of
   the embedded nats-server, clients reconnecting with `?after=` (bench/sockets.py; skipped on
   an external NATS). `--only sockets` runs it alone.
3d. Workers: chat turns/s of `agentbus up` with 1, 2 and 3 workers (`--workers N`), each on its own embedded
   services, 1200 turns over 40 sessions at once, with the CPU per turn of agentbus, nats-server, PostgreSQL and
   the client (bench/workers.py). `--only workers` runs it alone and writes its figures into bench/results.json
   (its "workers" entry, with the run's facts), leaving the rest of the file as it was.
3e. Hops: the same `agentbus up` with tracing on, exporting its spans over OTLP/HTTP to a receiver in this
   process; 200 turns and 3 boards give p50/p99 per hop of a turn and of a board step (bench/hops.py).
   `--only hops` runs it alone and writes its "hops" entry into bench/results.json, leaving the rest as it was.
4. The peers, in `.venv-bench` (`make bench` builds it): eventsourcing's PostgreSQL
   recorder, AutoGen's RoundRobinGroupChat, LangGraph with its Postgres checkpointer,
   a DBOS workflow. `--only peers` runs the floors and the peers alone.

Last, one table of agentbus's figures beside the peers' and the floors', with the
ratios, also written to bench/results.json with the machine and the command.

Services are the ones named by AGENTBUS_NATS_URL / AGENTBUS_DATABASE_URL, else an
embedded nats-server and PostgreSQL in a temporary directory; every process and
scratch database started here is stopped or dropped on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cli.settings import configure_logging

from . import _machine
from ._services import SUBJECT_PREFIX, Services, agentbus_up, scratch_database, services
from ._stats import LATENCY_HEADERS, Summary, ratio, table
from .append import Case, Counts, measure_appends
from .board import EXPERTS, ROUNDS, SPEECHES, STEPS, measure_boards, measure_raw
from .compare import BoardFigures, Collected, TeamFigures, render, results, rows
from .floors import Floors, floors_table, measure_floors
from .hops import hops_results, hops_tables, measure_hops
from .latency import measure_turns, split_summary
from .peer_runs import PeerResult, peer_table, peers_python, run_peers
from .sockets import SocketFigures, measure_sockets, socket_tables
from .team import measure_raw as measure_raw_teams
from .team import measure_teams
from .workers import WorkersRun, measure_workers, workers_results, workers_table

RESULTS = Path(__file__).resolve().parent / "results.json"
ONLY = ("board", "team", "sockets", "workers", "hops", "peers")
HOP_TURNS = 200
HOP_BOARDS = 3


def main(
    turns: int = 1000,
    *,
    only: str | None = None,
    boards: int = 5,
    teams: int = 5,
    peer_runs: int = 20,
    write: Path | None = None,
) -> int:
    """Run the benchmarks (`only`: "board" or "peers" alone), write the results to `write` if given.

    Return 0, 1 on failure, 130 when interrupted.
    """
    if turns < 10:
        raise ValueError("turns must be at least 10")
    if only not in (None, *ONLY):
        raise ValueError(f"only must be one of {ONLY}")
    configure_logging("warning")  # our own log lines go to stderr, never into the tables
    command = _command(turns, only, boards, teams, peer_runs)
    machine = _machine.machine()
    print(f"agentbus benchmarks — command: {command}")
    print(
        f"  cwd {os.getcwd()} | revision {machine['revision']} | python {machine['python']} | {machine['cpus']} CPUs "
        f"({machine['processor']}) | {machine['platform']} | load average {_machine.load(machine['load_average_start'])}"
    )
    workdir = Path(tempfile.mkdtemp(prefix="agentbus-bench-"))
    restore = _sigterm_as_interrupt()
    started, started_at = time.monotonic(), datetime.now(UTC).isoformat(timespec="seconds")
    collected = Collected()
    origin = "embedded nats-server and PostgreSQL of each `agentbus up`"
    try:
        if only != "workers":
            origin = _on_shared_services(workdir, collected, only, turns, boards, teams, peer_runs)
        if only in (None, "workers"):  # after the shared services stopped: each system starts its own
            collected.workers = _workers(workdir)
        wall = time.monotonic() - started
        machine["load_average_end"] = list(os.getloadavg())
        run = {"command": command, "started_at": started_at, "wall_seconds": round(wall, 1), "machine": machine}
        if only == "workers":
            _merge_workers(collected.workers, {**run, "services": origin}, write)
        elif only == "hops":
            _merge("hops", collected.hops, {**run, "services": origin}, write)
        elif only not in ("board", "team", "sockets"):
            _report(collected, {**run, "services": origin}, write)
        print(f"\ntotal wall time {wall:.1f} s | load average at the end {_machine.load(machine['load_average_end'])}")
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


def _report(collected: Collected, run: dict[str, Any], write: Path | None) -> None:
    """Print the one table of the run; write it, with every figure and the run's facts, as JSON to `write`."""
    table_rows = rows(collected)
    print()
    print(render(table_rows))
    print(
        "ratio = agentbus / other: for ms, 2.00x means agentbus takes twice as long; "
        "for events/s, 0.50x means it writes half as many"
    )
    if write is None:
        print("results not written (a partial run; --write PATH writes them)")
        return
    write.write_text(json.dumps(results(collected, table_rows, run), indent=2) + "\n")
    print(f"written to {write}")


def _on_shared_services(
    workdir: Path, collected: Collected, only: str | None, turns: int, boards: int, teams: int, peer_runs: int
) -> str:
    """Run the benchmarks that share one nats-server and PostgreSQL into `collected`; say which services they were."""
    with services(workdir) as svc:
        print(f"  services: {svc.origin}")
        if only in (None, "peers"):
            collected.floors = _floors(svc, turns)
        if only is None:
            collected.first_token, collected.final_answer = _latency(svc, workdir, turns, collected.floors)
            collected.appends = _appends(svc)
        if only in (None, "board"):
            collected.board = _boards(svc, workdir, boards)
        if only in (None, "team"):
            collected.team = _teams(svc, workdir, teams)
        if only in (None, "sockets"):
            _sockets(svc, workdir)
        if only in (None, "hops"):
            collected.hops = _hops(svc, workdir)
        if only in (None, "peers"):
            collected.peers = _peers(svc, peer_runs)
        return svc.origin


def _merge_workers(runs: list[WorkersRun] | None, run: dict[str, Any], write: Path | None) -> None:
    """Put the workers figures, with the facts of their run, into the results file at `write`; keep the rest."""
    if write is None or not runs:
        print("results not written")
        return
    data = json.loads(write.read_text()) if write.exists() else {}
    data["workers"] = {**workers_results(runs), "run": run}
    write.write_text(json.dumps(data, indent=2) + "\n")
    print(f"the workers figures written to {write} (its other entries are from {data.get('started_at', 'no run')})")


def _merge(key: str, entry: dict[str, Any] | None, run: dict[str, Any], write: Path | None) -> None:
    """Put one part's figures, with the facts of its run, into the results file at `write`; keep the rest."""
    if write is None or entry is None:
        print("results not written")
        return
    data = json.loads(write.read_text()) if write.exists() else {}
    data[key] = {**entry, "run": run}
    write.write_text(json.dumps(data, indent=2) + "\n")
    print(f"the {key} figures written to {write} (its other entries are from {data.get('started_at', 'no run')})")


def _hops(svc: Services, workdir: Path) -> dict[str, Any]:
    figures = measure_hops(svc, workdir, HOP_TURNS, HOP_BOARDS)
    print(f"\n[3e] system under test, traced: {figures.command}")
    print()
    print(hops_tables(figures))
    return hops_results(figures)


def _workers(workdir: Path) -> list[WorkersRun]:
    runs = measure_workers(workdir)
    print()
    print(workers_table(runs))
    return runs


def _floors(svc: Services, turns: int) -> Floors:
    floors = measure_floors(svc.nats_url, svc.database_url, turns)
    print()
    print(floors_table(floors))
    return floors


def _latency(svc: Services, workdir: Path, turns: int, floors: Floors | None) -> tuple[Summary, Summary]:
    with (
        scratch_database(svc.database_url, "up") as database_url,
        agentbus_up(workdir, svc.nats_url, database_url) as system,
    ):
        print(f"\n[1] system under test: {system.command}")
        print(f"    up (endpoints.json written) after {system.started_in:.2f} s; gateway {system.endpoints.http_url}")
        result = asyncio.run(measure_turns(system.endpoints, turns, system.cpu_seconds))

    first = Summary.of_seconds(result.first_token)
    final = Summary.of_seconds(result.final_answer)
    baselines = []
    if floors is not None:
        baselines = [
            ["raw nats-py request/reply (floor [0])", *floors.request_reply.cells()],
            ["durable floor (floor [0])", *floors.durable_turn.cells()],
        ]
    print()
    print(
        table(
            f"WebSocket message -> first token: {turns} turns in sequence on one session "
            f"(after {result.warmup} warm-up turns), offline provider, delay 0",
            ["latency", *LATENCY_HEADERS],
            [["ws message -> first token", *first.cells()], ["ws message -> final_answer", *final.cells()], *baselines],
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
    if floors is not None:
        print(f"ratio first-token p50 / raw request-reply p50 = {ratio(first.p50, floors.request_reply.p50)}")
        print(f"ratio final_answer p50 / raw request-reply p50 = {ratio(final.p50, floors.request_reply.p50)}")
        print(f"ratio first-token p50 / durable floor p50 = {ratio(first.p50, floors.durable_turn.p50)}")
    return first, final


def _appends(svc: Services) -> list[Case]:
    counts = Counts()
    with scratch_database(svc.database_url, "append") as database_url:
        cases = asyncio.run(measure_appends(database_url, counts))
    cells = []
    for case in cases:
        for label, measured in (("EventLog.append", case.eventlog), ("raw asyncpg", case.raw)):
            cells.append(
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
            cells,
        )
    )
    print(
        "raw baseline: bench_raw_events, same columns and indexes as events, bigserial positions; "
        "(a)/(b) one autocommit INSERT per row (1 row = 1 transaction), (b) on 16 connections, "
        f"(c) executemany of {counts.batch_size} rows in one transaction. "
        "EventLog: expected_version checked on every append; (b) goes through the group-commit appender."
    )
    return cases


def _boards(svc: Services, workdir: Path, boards: int) -> BoardFigures:
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
    return BoardFigures(overhead_per_speech_ms=overhead, wall=wall, baseline=baseline)


def _teams(svc: Services, workdir: Path, teams: int) -> TeamFigures:
    with scratch_database(svc.database_url, "team") as database_url:
        with agentbus_up(workdir, svc.nats_url, database_url) as system:
            print(f"\n[3b] system under test: {system.command}")
            runs = asyncio.run(measure_teams(system.endpoints, teams))
        raw = asyncio.run(measure_raw_teams(database_url, teams, events=runs[0].events))
    wall = Summary.of_seconds([run.wall for run in runs])
    baseline = Summary.of_seconds(raw)
    phases = runs[0].phases
    print()
    print(
        table(
            f"Team pipeline, dev_team (a lead, 3 members): {phases} phases (2 concurrent), each executed and reviewed, "
            f"plan + synthesis = {2 * phases + 2} model calls, offline provider, delay 0; {teams} teams in sequence "
            "on one session (after 1 warm-up team)",
            ["per team", *LATENCY_HEADERS],
            [
                ["ws @team -> final_answer", *wall.cells()],
                ["raw: same generations + raw INSERTs (baseline)", *baseline.cells()],
            ],
        )
    )
    overhead = (wall.p50 - baseline.p50) / phases
    print(f"overhead per phase (p50 wall - p50 baseline) / {phases} = {overhead:.2f} ms")
    print(f"ratio team wall p50 / baseline p50 = {ratio(wall.p50, baseline.p50)}")
    print(
        f"baseline: in this process, the same {2 * phases + 2} offline-provider generations on the same prompts, then "
        f"one autocommit asyncpg INSERT per event the team and its session recorded ({runs[0].events}), all in sequence"
    )
    return TeamFigures(phases=phases, overhead_per_phase_ms=overhead, wall=wall, baseline=baseline)


def _sockets(svc: Services, workdir: Path) -> SocketFigures:
    with (
        scratch_database(svc.database_url, "sockets") as database_url,
        agentbus_up(workdir, svc.nats_url, database_url) as system,
    ):
        print(f"\n[3c] system under test: {system.command}")
        figures = asyncio.run(measure_sockets(system.endpoints, SUBJECT_PREFIX, nats_server=svc.nats_server))
    print()
    print(socket_tables(figures))
    return figures


def _peers(svc: Services, runs: int) -> list[PeerResult]:
    print(f"\n[4] peers, each by {peers_python()} on a scratch database of the same PostgreSQL")
    peers = run_peers(svc.nats_url, svc.database_url, runs)
    print()
    print(peer_table(peers, runs))
    return peers


def _command(turns: int, only: str | None, boards: int, teams: int, peer_runs: int) -> str:
    if Path(sys.argv[0]).name == "run.py":
        flags = f" --only {only}" if only else ""
        return f"{shlex.quote(sys.executable)} -m bench.run --turns {turns}{flags} --boards {boards} --teams {teams} --peer-runs {peer_runs}"
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
    parser.add_argument("--teams", type=int, default=5, help="measured team pipelines (default 5)")
    parser.add_argument("--peer-runs", type=int, default=20, help="measured runs of each peer (default 20)")
    parser.add_argument("--only", choices=ONLY, help="run only this benchmark (peers: the floors and the peers)")
    parser.add_argument(
        "--write",
        type=Path,
        help=f"write the results as JSON here (default: {RESULTS.name} beside this file, for full runs and --only workers)",
    )
    args = parser.parse_args(argv)
    if args.write is None and args.only in (None, "workers", "hops"):
        args.write = RESULTS
    return args


if __name__ == "__main__":
    _args = _parse()
    sys.exit(
        main(
            _args.turns,
            only=_args.only,
            boards=_args.boards,
            teams=_args.teams,
            peer_runs=_args.peer_runs,
            write=_args.write,
        )
    )
