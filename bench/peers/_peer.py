"""What every peer script shares: arguments, the database URL in each client's form, timing, the JSON line.

Peer scripts run in `.venv-bench` (the peers' own dependencies) and never import
agentbus: this module is the standard library only.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

SPEAKERS = ["pragmatist", "skeptic", "visionary", "economist", "operator"]
ROUNDS = 3
STEPS = len(SPEAKERS) * ROUNDS  # a board meeting's speeches: 5 experts x 3 rounds
CONTENT = "x" * 100  # the size of bench.append's event content


@dataclass(frozen=True, slots=True)
class Database:
    """One PostgreSQL database, parsed from the URL bench.run passes (a TCP host or a Unix socket dir)."""

    user: str
    password: str
    host: str
    port: int
    name: str

    @classmethod
    def parse(cls, url: str) -> Database:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        host = query.get("host", [parts.hostname or "localhost"])[0]
        return cls(
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
            host=host,
            port=int(query.get("port", [parts.port or 5432])[0]),
            name=parts.path.lstrip("/"),
        )

    def conninfo(self) -> str:
        """A libpq keyword string (psycopg), which takes a socket directory as host."""
        fields = {"user": self.user, "password": self.password, "host": self.host, "port": self.port}
        pairs = [f"{k}={_quote(str(v))}" for k, v in fields.items()]
        return " ".join([*pairs, f"dbname={_quote(self.name)}"])

    def sqlalchemy_url(self) -> str:
        """A `postgresql+psycopg://` URL (SQLAlchemy, DBOS), the socket directory in the query."""
        from urllib.parse import quote

        auth = quote(self.user, safe="") + (":" + quote(self.password, safe="") if self.password else "")
        if self.host.startswith("/"):
            return f"postgresql+psycopg://{auth}@/{self.name}?host={quote(self.host)}&port={self.port}"
        return f"postgresql+psycopg://{auth}@{self.host}:{self.port}/{self.name}"


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile, as bench._stats computes it."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """n, p50, p99 and mean of `seconds`, in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {"n": len(ms), "p50": percentile(ms, 50), "p99": percentile(ms, 99), "mean": statistics.fmean(ms)}


def timed(run: Callable[[], object], times: int) -> list[float]:
    """Call `run` `times` times; return each call's seconds."""
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return samples


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--database-url", required=True, help="a scratch database of its own")
    parser.add_argument("--nats-url", default="", help="the run's nats-server (the peers here do not use it)")
    parser.add_argument("--runs", type=int, default=20, help="measured runs after one warm-up")
    return parser.parse_args()


def report(measure: Callable[[argparse.Namespace], dict[str, Any]], description: str) -> None:
    """Parse the arguments, run `measure`, print its figures as one JSON line (or the error), exit 0/1."""
    args = arguments(description)
    try:
        figures = measure(args)
    except Exception as exc:  # the runner prints the peer as unavailable, with this reason
        traceback.print_exc()
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        sys.exit(1)
    print(json.dumps(figures), flush=True)
