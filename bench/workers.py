"""Chat turns/s with 1, 2 and 3 workers, and the CPU each process spent per turn (issues 13 and 17).

For N in 1, 2, 3: `agentbus up` (N = 1: no flag, its one in-process worker; else
`--workers N`, N `agentbus worker` children) on its own embedded nats-server and
PostgreSQL under a data dir of its own, offline provider, delay 0. 40 sessions,
one WebSocket each; after the partitions settle and 2 warm-up turns per session,
1200 turns drawn from one budget by the 40 sockets at once (each sends its next
message when its last one is answered, so 40 turns are in flight). Measured over
those 1200 turns: turns/s (first message to last final answer), message → final
answer p50/p99, and the CPU seconds (utime + stime from /proc/<pid>/stat) of

- agentbus's own processes: the `up` process (gateway, and the worker when N = 1)
  and each worker child (children of `up` whose command is `agentbus worker`);
- nats-server (a child of `up`);
- PostgreSQL: the postmaster (a child of `up`) and its children, the backends and
  auxiliary processes, with what the postmaster reaped in the window (its cutime);
- this bench client (the 40 sockets), which shares the cores with the system;
- the whole machine (/proc/stat), so what other work took in the window shows too;

and PostgreSQL's transactions per turn in the agentbus database (pg_stat_database,
read after its counters were flushed), which shows how well commits are batched.

Each system is stopped as Ctrl-C stops it (SIGINT to `up`, which stops its
workers), and its exit code printed. It prints; it asserts nothing.

    python -m bench.run --only workers      (also part of make bench)
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from websockets.asyncio.client import ClientConnection, connect

from cli.settings import Endpoints
from projections.database import asyncpg_dsn

from ._services import RunningSystem, agentbus_up, create_sessions
from ._stats import Summary, table

COUNTS = (1, 2, 3)
SESSIONS = 40
WARMUP_PER_SESSION = 2
TURNS = 1200
"""About 13 s at 90 turns/s: long enough that a burst of other work on the shared cores weighs little."""
SETTLE = 3.0
"""Seconds between `up` being ready and the warm-up: every worker holds its membership lock by then, and takes
its share of the partitions at its next look (`[cluster] rebalance_interval`, 1 s)."""
TIMEOUT = 60.0
STATS_FLUSH = 1.5
"""Seconds for PostgreSQL's backends to flush their statistics (they report at most once a second)."""
CLOCK = os.sysconf("SC_CLK_TCK")


class WorkersError(RuntimeError):
    """A turn did not complete as the protocol says."""


@dataclass(frozen=True, slots=True)
class Tree:
    """The processes of one `agentbus up`, from /proc: itself, its worker children, nats-server, PostgreSQL."""

    up: int
    workers: tuple[int, ...]
    nats: tuple[int, ...]
    postgres: tuple[int, ...]  # the postmaster first, then its children


@dataclass(frozen=True, slots=True)
class Sample:
    """CPU seconds used so far, per part, and the wall clock."""

    at: float
    up: float  # the `up` process (the gateway, and the worker when N = 1), with what it reaped
    workers: dict[int, float]  # pid -> seconds
    nats: float
    postgres: float
    client: float
    machine_busy: float  # every process of the machine (/proc/stat user+nice+system+irq+softirq)
    machine_steal: float  # time the hypervisor gave our virtual CPUs to others


@dataclass(frozen=True, slots=True)
class WorkersRun:
    workers: int
    command: str
    started_in: float
    sessions: int
    turns: int
    elapsed: float
    final_answer: Summary
    cpu: dict[str, float]  # seconds in the window: up (its process), workers, nats, postgres, client
    worker_cpu: list[float]  # each worker child's seconds (none when N = 1)
    machine_busy: float
    machine_steal: float
    load_average: list[float]  # at the end of the window
    transactions: int  # PostgreSQL commits + rollbacks in the agentbus database in the window
    stop_code: int | None  # exit code of `up` after SIGINT (None: killed, it did not stop in time)
    stop_seconds: float

    @property
    def turns_per_second(self) -> float:
        return self.turns / self.elapsed

    def ms_per_turn(self, part: str) -> float:
        return self.cpu[part] / self.turns * 1000

    @property
    def agentbus(self) -> float:
        return self.cpu["up"] + self.cpu["workers"]

    @property
    def ours(self) -> float:
        """CPU seconds of everything this benchmark runs: the system, its servers and the client."""
        return sum(self.cpu.values())


def measure_workers(
    workdir: Path, counts: Iterable[int] = COUNTS, *, sessions: int = SESSIONS, turns: int = TURNS
) -> list[WorkersRun]:
    """One `agentbus up` per count in `counts`, in turn, each on its own embedded services; its figures."""
    runs = []
    for count in counts:
        name = f"workers-{count}"
        args = [] if count == 1 else ["--workers", str(count)]
        try:
            with agentbus_up(workdir, None, None, args=args, data_dir_name=name, timeout=120.0) as system:
                print(f"\n[5] N={count}: {system.command} (up after {system.started_in:.1f} s)")
                run = asyncio.run(_measure(system, count, sessions, turns))
                code, seconds = system.interrupt()
                run = replace(run, stop_code=code, stop_seconds=seconds)
                print(f"    {_line(run)}")
        finally:
            shutil.rmtree(workdir / name, ignore_errors=True)
        runs.append(run)
    return runs


def workers_table(runs: list[WorkersRun]) -> str:
    base = runs[0].turns_per_second if runs else 0.0
    cells = []
    for run in runs:
        cells.append(
            [
                str(run.workers),
                f"{run.turns_per_second:.1f}",
                f"{run.turns_per_second / base:.2f}x" if base else "n/a",
                f"{run.agentbus / run.turns * 1000:.2f}",
                f"{run.ms_per_turn('up'):.2f} / {run.ms_per_turn('workers'):.2f}" if run.worker_cpu else "(all in up)",
                f"{run.ms_per_turn('nats'):.2f}",
                f"{run.ms_per_turn('postgres'):.2f}",
                f"{run.ms_per_turn('client'):.2f}",
                f"{run.transactions / run.turns:.2f}",
                f"{run.ours / run.elapsed:.2f}",
                f"{run.machine_busy / run.elapsed:.2f}",
                f"{run.final_answer.p50:.0f} / {run.final_answer.p99:.0f}",
            ]
        )
    first = runs[0] if runs else None
    title = (
        f"Chat turns with N workers: `agentbus up [--workers N]` on its own embedded services, offline provider, delay 0; "
        f"{first.turns if first else TURNS} turns over {first.sessions if first else SESSIONS} sessions at once "
        f"(one socket each), after {WARMUP_PER_SESSION} warm-up turns per session; CPU = utime+stime, ms per turn"
    )
    headers = [
        "workers",
        "turns/s",
        "vs N=1",
        "agentbus ms",
        "up / workers ms",
        "nats ms",
        "postgres ms",
        "client ms",
        "pg tx/turn",
        "cores ours",
        "cores machine",
        "final p50/p99 ms",
    ]
    notes = (
        "agentbus = the `up` process (gateway; the worker too when N=1) + the `agentbus worker` children; "
        "cores ours = CPU of agentbus, nats-server, PostgreSQL and this client per second of the window, "
        f"cores machine = every process of the machine (/proc/stat), out of {os.cpu_count()}; "
        "pg tx/turn = transactions of the agentbus database per turn (pg_stat_database)"
    )
    return table(title, headers, cells) + "\n" + notes


def workers_results(runs: list[WorkersRun]) -> dict[str, Any]:
    """The figures as JSON-ready data, for bench/results.json."""
    return {
        "sessions": runs[0].sessions if runs else SESSIONS,
        "turns": runs[0].turns if runs else TURNS,
        "warmup_turns_per_session": WARMUP_PER_SESSION,
        "runs": [
            {
                "workers": run.workers,
                "command": run.command,
                "turns_per_second": run.turns_per_second,
                "vs_one_worker": run.turns_per_second / runs[0].turns_per_second,
                "elapsed_seconds": run.elapsed,
                "cpu_ms_per_turn": {
                    "agentbus": run.agentbus / run.turns * 1000,
                    **{part: run.ms_per_turn(part) for part in run.cpu},
                },
                "worker_cpu_ms_per_turn": [seconds / run.turns * 1000 for seconds in run.worker_cpu],
                "cores_ours": run.ours / run.elapsed,
                "cores_machine": run.machine_busy / run.elapsed,
                "cores_stolen": run.machine_steal / run.elapsed,
                "postgres_transactions_per_turn": run.transactions / run.turns,
                "final_answer_ms": asdict(run.final_answer),
                "load_average_end": run.load_average,
                "stopped_by_sigint": {"exit_code": run.stop_code, "seconds": run.stop_seconds},
            }
            for run in runs
        ],
    }


async def _measure(system: RunningSystem, count: int, sessions: int, turns: int) -> WorkersRun:
    endpoints = system.endpoints
    await asyncio.sleep(SETTLE)
    tree = _tree(system.pid)
    if len(tree.workers) != (count if count > 1 else 0) or not tree.nats or not tree.postgres:
        print(f"    warning: expected {count} worker children, a nats-server and a postmaster under up; found {tree}")
    sockets = await _open_sessions(endpoints, sessions)
    try:
        await asyncio.gather(
            *(_turns(ws, iter(range(WARMUP_PER_SESSION)), f"warm-up {n}") for n, ws in enumerate(sockets))
        )
        budget = iter(range(turns))  # one budget for all sockets: exactly `turns` turns
        before_tx = await _transactions(endpoints.database_url)
        before = _sample(tree)
        results = await asyncio.gather(*(_turns(ws, budget, f"hello {n}") for n, ws in enumerate(sockets)))
        after = _sample(_tree(system.pid))
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    after_tx = await _transactions(endpoints.database_url)
    if set(after.workers) != set(before.workers):
        print(
            f"    warning: the worker children changed during the window: {sorted(before.workers)} -> {sorted(after.workers)}"
        )
    latencies = [seconds for result in results for seconds in result]
    return WorkersRun(
        workers=count,
        command=system.command,
        started_in=system.started_in,
        sessions=sessions,
        turns=len(latencies),
        elapsed=after.at - before.at,
        final_answer=Summary.of_seconds(latencies),
        cpu={
            "up": after.up - before.up,
            "workers": sum(after.workers.values()) - sum(before.workers.values()),
            "nats": after.nats - before.nats,
            "postgres": after.postgres - before.postgres,
            "client": after.client - before.client,
        },
        worker_cpu=[seconds - before.workers.get(pid, 0.0) for pid, seconds in sorted(after.workers.items())],
        machine_busy=after.machine_busy - before.machine_busy,
        machine_steal=after.machine_steal - before.machine_steal,
        load_average=list(os.getloadavg()),
        transactions=after_tx - before_tx,
        stop_code=None,
        stop_seconds=0.0,
    )


async def _transactions(database_url: str) -> int:
    """Commits + rollbacks of the database so far, once the backends flushed their counters.

    A busy backend reports its counts at most once a second (an idle one within a second or so): wait that out,
    so the figure before the window holds the warm-up's and the one after holds the window's.
    """
    await asyncio.sleep(STATS_FLUSH)
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        # Our own transactions (this query and its connection's) add 1 or 2 to a count of thousands.
        count = await conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        )
    finally:
        await conn.close()
    return int(count)


async def _open_sessions(endpoints: Endpoints, sessions: int) -> list[ClientConnection]:
    async with httpx.AsyncClient(base_url=endpoints.http_url, timeout=30.0) as http:
        session_ids = await create_sessions(http, sessions)
    ws_base = "ws" + endpoints.http_url.removeprefix("http") + "/api/v1/chat/ws/"
    return list(await asyncio.gather(*(_open(ws_base + sid) for sid in session_ids)))


async def _open(url: str) -> ClientConnection:
    ws = await connect(url, max_size=None, compression=None)
    hello = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    if hello.get("type") != "connected":
        await ws.close()
        raise WorkersError(f"expected a connected frame, got {hello}")
    return ws


async def _turns(ws: ClientConnection, budget: Iterable[int], label: str) -> list[float]:
    """Take turns from `budget` (shared with the other sockets) until it is spent; seconds to each final answer."""
    latencies = []
    for i in budget:
        key = uuid.uuid4().hex
        sent = time.perf_counter()
        await ws.send(json.dumps({"type": "message", "content": f"{label} {i}", "idempotency_key": key}))
        mine: str | None = None
        async with asyncio.timeout(TIMEOUT):
            while True:
                frame = json.loads(await ws.recv())
                kind = frame.get("type")
                if kind == "user_message" and frame["data"].get("idempotency_key") == key:
                    mine = frame["data"]["message_id"]
                elif kind == "final_answer" and mine is not None and frame.get("turn_id") == mine:
                    latencies.append(time.perf_counter() - sent)
                    break
                elif kind == "error":  # errors come to their sender only: this one is ours
                    raise WorkersError(f"error frame during turn {label} {i}: {frame}")
    return latencies


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def _cpu(pid: int) -> float:
    """utime + stime + cutime + cstime of `pid` in seconds (what it used and what its reaped children used); 0 if gone."""
    fields = _stat(pid)
    return 0.0 if fields is None else sum(int(f) for f in fields[11:15]) / CLOCK


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[1] == str(pid) and fields[0] != "Z":
                found.append(int(entry.name))
    return sorted(found)


def _tree(up: int) -> Tree:
    workers, nats, postmaster = [], [], []
    for pid in _children(up):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if comm == "nats-server":
            nats.append(pid)
        elif comm == "postgres":
            postmaster.append(pid)
        elif b"worker" in argv[1:3]:  # `agentbus worker --data-dir D` (argv[1] is the script when run by python)
            workers.append(pid)
    postgres = [*postmaster, *(child for pid in postmaster for child in _children(pid))]
    return Tree(up, tuple(workers), tuple(nats), tuple(postgres))


def _sample(tree: Tree) -> Sample:
    # The postmaster's cutime holds the backends that ended in the window, so a backend that ends is not lost.
    busy, steal = _machine()
    return Sample(
        at=time.perf_counter(),
        up=_cpu(tree.up),
        workers={pid: _cpu(pid) for pid in tree.workers},
        nats=sum(_cpu(pid) for pid in tree.nats),
        postgres=sum(_cpu(pid) for pid in tree.postgres),
        client=time.process_time(),
        machine_busy=busy,
        machine_steal=steal,
    )


def _machine() -> tuple[float, float]:
    """Busy and stolen CPU seconds of the whole machine since boot, from the first line of /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split()[1:9]
    )
    return (user + nice + system + irq + softirq) / CLOCK, steal / CLOCK


def _line(run: WorkersRun) -> str:
    split = " + ".join(f"{s / run.turns * 1000:.2f}" for s in run.worker_cpu)
    workers = f" (workers {split})" if run.worker_cpu else ""
    stopped = f"exit {run.stop_code}" if run.stop_code is not None else "did not stop, killed"
    return (
        f"{run.turns} turns in {run.elapsed:.2f} s = {run.turns_per_second:.1f} turns/s; CPU ms/turn: up "
        f"{run.ms_per_turn('up'):.2f}, workers {run.ms_per_turn('workers'):.2f}{workers}, nats "
        f"{run.ms_per_turn('nats'):.2f}, postgres {run.ms_per_turn('postgres'):.2f}, client {run.ms_per_turn('client'):.2f}; "
        f"machine {run.machine_busy / run.elapsed:.2f} cores busy, {run.machine_steal / run.elapsed:.2f} stolen; "
        f"SIGINT: {stopped} after {run.stop_seconds:.1f} s"
    )
