"""The `agentbus` command: composes schemas, bus, projections, actors and gateway.

agentbus up        embedded nats-server + PostgreSQL, the worker and the gateway
agentbus worker    actors only (external services)
agentbus gateway   HTTP/WebSocket only (external services)
agentbus publish   put a chat message on the bus, as another service would
agentbus migrate   create or upgrade the database schema
agentbus projections rebuild   recreate the read models from the log
agentbus replay    rebuild a board meeting or a team, or outline a session, from the log
agentbus bench     measure latency and throughput against raw baselines
"""

from __future__ import annotations

import argparse
import os

from .serve import cmd_gateway, cmd_worker
from .settings import Settings, configure_logging
from .tools import cmd_bench, cmd_migrate, cmd_projections, cmd_publish, cmd_replay
from .up import cmd_up


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentbus", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--log-level", default=os.environ.get("AGENTBUS_LOG_LEVEL", "info"))
    sub = parser.add_subparsers(dest="command", required=True)

    def with_data_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--data-dir", default=os.environ.get("AGENTBUS_DATA_DIR", ".agentbus"))
        return p

    up = with_data_dir(sub.add_parser("up", help="run everything on embedded services"))
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    up.add_argument(
        "--llm",
        choices=["local"],
        default=os.environ.get("AGENTBUS_LLM") or None,
        help="local: serve every agent and expert with a small local model (built once per machine, then cached)",
    )
    up.set_defaults(func=cmd_up)

    worker = with_data_dir(sub.add_parser("worker", help="run the actors"))
    worker.set_defaults(func=cmd_worker)

    gw = with_data_dir(sub.add_parser("gateway", help="run the HTTP/WebSocket gateway"))
    gw.add_argument("--host", default="127.0.0.1")
    gw.add_argument("--port", type=int, default=8000)
    gw.set_defaults(func=cmd_gateway)

    pub = with_data_dir(sub.add_parser("publish", help="publish a chat message onto the bus"))
    pub.add_argument("--session", required=True)
    pub.add_argument("--idempotency-key")
    pub.add_argument("text")
    pub.set_defaults(func=cmd_publish)

    mig = with_data_dir(sub.add_parser("migrate", help="create or upgrade the database schema"))
    mig.set_defaults(func=cmd_migrate)

    projections = with_data_dir(sub.add_parser("projections", help="manage the read models"))
    projections.add_argument("action", choices=["rebuild"], help="recreate the read models from the event log")
    projections.set_defaults(func=cmd_projections)

    replay = with_data_dir(
        sub.add_parser("replay", help="rebuild a board or a team, or outline a session, from the event log")
    )
    replay.add_argument("what", choices=["board", "team", "session"])
    replay.add_argument("id", help="the board or team id (= the id of the message that started it) or the session id")
    replay.add_argument(
        "--format", choices=["markdown", "json"], default="markdown", help="board or team output (default markdown)"
    )
    replay.add_argument("--at", type=int, help="show the board or team as it stood at this log position")
    replay.set_defaults(func=cmd_replay)

    # Every argument after `bench` goes to `python -m bench.run`, `--help` included.
    bench = sub.add_parser("bench", help="run the benchmarks in bench/ (source tree only)", add_help=False)
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        args.bench_args = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    configure_logging(args.log_level)
    return int(args.func(args, Settings.from_env()) or 0)
