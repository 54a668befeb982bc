"""Run the peer frameworks (bench/peers/*.py) in their own venv, on the run's PostgreSQL and NATS.

Each peer is a script of `bench/peers/`, run by `.venv-bench/bin/python` (built
by `make bench` from `bench/peers/requirements.txt`, so the peers never change
agentbus's dependency versions); it never imports agentbus. It gets a scratch
database of its own and prints one JSON line of figures. A peer that cannot
run is reported as unavailable, with the reason, and the benchmark goes on.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._services import die_with_parent, scratch_database
from ._stats import table

ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = Path(__file__).resolve().parent / "peers"
PEERS_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
PEER_TIMEOUT = 300.0  # seconds for one peer script, imports and all runs included


@dataclass(frozen=True, slots=True)
class Peer:
    key: str
    label: str
    script: str


PEERS = [
    Peer("eventsourcing", "eventsourcing (PostgreSQL recorder)", "eventsourcing_pg.py"),
    Peer("autogen", "AutoGen RoundRobinGroupChat (replay client)", "autogen_roundrobin.py"),
    Peer("langgraph", "LangGraph + PostgresSaver", "langgraph_pg.py"),
    Peer("dbos", "DBOS workflow", "dbos_workflow.py"),
]


@dataclass(frozen=True, slots=True)
class PeerResult:
    peer: Peer
    figures: dict[str, Any] | None  # the script's JSON line; None when unavailable
    reason: str = ""  # why it is unavailable
    wall: float = 0.0  # seconds the script took, imports included

    def get(self, *path: str) -> float | None:
        """The figure at `path` (e.g. "per_step_ms", "p50"), or None when the peer did not run."""
        value: Any = self.figures
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return float(value) if isinstance(value, int | float) else None


def peers_python() -> Path:
    """The interpreter of the peers: `.venv-bench`'s, or the one AGENTBUS_BENCH_PEERS_PYTHON names."""
    return Path(os.environ.get("AGENTBUS_BENCH_PEERS_PYTHON") or PEERS_PYTHON)


def run_peers(nats_url: str, server_url: str, runs: int) -> list[PeerResult]:
    """Run every peer in turn, each on a scratch database of `server_url`'s server."""
    python = peers_python()
    if not python.exists():
        reason = f"{python} does not exist (`make bench` builds it from bench/peers/requirements.txt)"
        return [PeerResult(peer, None, reason) for peer in PEERS]
    results = []
    for peer in PEERS:
        with scratch_database(server_url, f"peer_{peer.key}") as database_url:
            results.append(_run(python, peer, nats_url, database_url, runs))
    return results


def _run(python: Path, peer: Peer, nats_url: str, database_url: str, runs: int) -> PeerResult:
    argv = [str(python), str(PEERS_DIR / peer.script), "--database-url", database_url, "--nats-url", nats_url]
    started = time.monotonic()
    try:
        done = subprocess.run(
            [*argv, "--runs", str(runs)],
            capture_output=True,
            text=True,
            timeout=PEER_TIMEOUT,
            cwd=PEERS_DIR,
            start_new_session=True,  # Ctrl-C reaches only us; run() kills the script on the way out
            preexec_fn=die_with_parent,
        )
    except subprocess.TimeoutExpired:
        return PeerResult(peer, None, f"no result within {PEER_TIMEOUT:.0f} s")
    except OSError as exc:
        return PeerResult(peer, None, f"could not start {python}: {exc}")
    wall = time.monotonic() - started
    lines = done.stdout.strip().splitlines()
    try:
        figures = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        figures = {}
    if done.returncode != 0 or not isinstance(figures, dict) or "error" in figures or not figures:
        reason = figures.get("error") if isinstance(figures, dict) else None
        stderr = done.stderr.strip().splitlines()
        return PeerResult(peer, None, reason or (stderr[-1] if stderr else f"exit code {done.returncode}"), wall)
    return PeerResult(peer, figures, "", wall)


# What each peer's table row shows: (figure, path to its {n, p50, p99} in the JSON line).
_SHOWN = {
    "eventsourcing": [
        ("1 event/save: ms per save", ("single", "per_save_ms")),
        ("saves of 100 events: ms per save", ("batch", "per_save_ms")),
    ],
    "autogen": [("ms per speech (15 speeches a run)", ("per_speech_ms",))],
    "langgraph": [("ms per durable step (15 a run)", ("per_step_ms",))],
    "dbos": [("ms per durable step (15 a run)", ("per_step_ms",))],
}


def peer_table(results: list[PeerResult], runs: int) -> str:
    """The peers' own figures: p50/p99 per unit of work, and events/s for eventsourcing."""
    cells = []
    for result in results:
        if result.figures is None:
            cells.append([result.peer.label, f"unavailable: {result.reason}", "", "", "", "", ""])
            continue
        version = str(result.figures.get("version", "?"))
        for figure, path in _SHOWN[result.peer.key]:
            n, p50, p99 = (result.get(*path, key) for key in ("n", "p50", "p99"))
            cells.append([result.peer.label, figure, f"{n:.0f}" if n else "", f"{p50:.3f}", f"{p99:.3f}", version, ""])
        for case, label in (("single", "1 event/save"), ("batch", "saves of 100")):
            per_second = result.get(case, "events_per_second")
            if per_second is not None:
                cells.append([result.peer.label, f"{label}: events/s", "", "", "", version, f"{per_second:,.0f}"])
    return table(
        f"Peer frameworks, zero-latency model or none, {runs} measured runs each after 1 warm-up "
        "(eventsourcing: bench.append's counts)",
        ["peer", "figure", "n", "p50 ms", "p99 ms", "version", "events/s"],
        cells,
    )
