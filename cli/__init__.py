"""The `agentbus` command: composes schemas, bus, projections, actors and gateway.

Each subcommand's module is imported only when that subcommand runs (`_lazy`),
so that `agentbus --help`, or a mistyped command, answers at once instead of
loading NATS, SQLAlchemy, uvicorn and the actors first. A new subcommand names
its handler as `"module:function"` and keeps its imports out of this module.
"""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Callable
from typing import Any

from .settings import LOG_FORMATS, Settings, configure_logging

Handler = Callable[[argparse.Namespace, Settings], int | None]

DESCRIPTION = """\
Multi-agent LLM conversations as event-sourced actors on NATS, every turn in a
PostgreSQL event log. Commands that need the services find them through
<data-dir>/endpoints.json, written by a running `agentbus up`, or through
AGENTBUS_NATS_URL and AGENTBUS_DATABASE_URL. A position is an event's place in
the whole log (one increasing sequence over every session)."""


def _lazy(target: str) -> Handler:
    """The handler `module:function` of this package, imported only when it runs."""
    module, _, function = target.partition(":")

    def run(args: argparse.Namespace, settings: Settings) -> int | None:
        handler: Handler = getattr(importlib.import_module(f".{module}", __name__), function)
        return handler(args, settings)

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentbus", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("AGENTBUS_LOG_LEVEL", "info"),
        help="debug, info (default), warning, error",
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=os.environ.get("AGENTBUS_LOG_FORMAT", "auto"),
        help="auto (default): readable on a terminal, JSON lines otherwise",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    examples: list[str] = []

    def command(
        name: str, handler: str, summary: str, example: str, details: str = "", *, data_dir: bool = True, **kw: Any
    ) -> argparse.ArgumentParser:
        """Add subcommand `name`: `summary` in the list, `details` and `example` in its own --help."""
        what = f"{summary[:1].upper()}{summary[1:]}."
        description = f"{what}\n\n{details}" if details else what
        p = sub.add_parser(
            name,
            help=summary,
            description=description,
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            **kw,
        )
        if data_dir:
            p.add_argument(
                "--data-dir",
                default=os.environ.get("AGENTBUS_DATA_DIR", ".agentbus"),
                help="the data dir of `agentbus up` (default .agentbus): its endpoints.json says where the services are",
            )
        p.set_defaults(func=_lazy(handler))
        examples.append(f"  {example}")
        return p

    up = command(
        "up",
        "up:cmd_up",
        "run everything on embedded services: nats-server, PostgreSQL, the worker and the gateway",
        "agentbus up --port 8000",
        "The servers run under --data-dir (unless AGENTBUS_NATS_URL / AGENTBUS_DATABASE_URL name\n"
        "external ones), one instance per data dir; <data-dir>/endpoints.json tells the other\n"
        "commands where they are. Ctrl-C stops everything in order.",
    )
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    up.add_argument(
        "--llm",
        choices=["local"],
        default=os.environ.get("AGENTBUS_LLM") or None,
        help="local: serve every agent and expert with a small local model (built once per machine, then cached)",
    )
    up.add_argument(
        "--workers",
        type=int,
        default=1,
        help="run N `agentbus worker` processes (they share the command partitions) instead of one in-process worker",
    )

    command(
        "worker",
        "serve:cmd_worker",
        "run the actors (sessions, turns, boards, teams) on external services",
        "agentbus worker --data-dir .agentbus",
        "The services are AGENTBUS_NATS_URL and AGENTBUS_DATABASE_URL, or those of a running `agentbus up`\n"
        "(the example adds a worker beside it). Run as many as needed: workers share the command\n"
        "partitions, and take over those of one that dies.",
    )

    gw = command(
        "gateway",
        "serve:cmd_gateway",
        "run the HTTP/WebSocket gateway on external services",
        "agentbus gateway --data-dir .agentbus --port 8081",
        "The services are AGENTBUS_NATS_URL and AGENTBUS_DATABASE_URL, or those of a running `agentbus up`\n"
        "(the example serves a second gateway beside it).",
    )
    gw.add_argument("--host", default="127.0.0.1")
    gw.add_argument("--port", type=int, default=8000)

    command(
        "mcp",
        "mcp:cmd_mcp",
        "serve agentbus to MCP clients (IDEs, desktop assistants) over stdio",
        "agentbus mcp --data-dir .agentbus",
        "Tools: chat with an agent in a session, hold a board on a topic and wait for its conclusion,\n"
        "read a board's or a team's record. It serves AGENTBUS_NATS_URL and AGENTBUS_DATABASE_URL, or\n"
        "the running `agentbus up` of --data-dir; a gateway serves the same tools at /mcp (HTTP).",
    )

    pub = command(
        "publish",
        "publish:cmd_publish",
        "send a chat message to a session over the bus, as another service would, and wait for its verdict",
        'agentbus publish --session 3f2c9a0e --idempotency-key k1 "hello from a service"',
        "Exits 0 once the session accepted the message (its JSON receipt on stdout: the command's\n"
        "sequence, the message's id and log position), 2 if it refused it (unknown or closed session,\n"
        "empty message: the reason on stderr), 1 if it did not answer within --timeout.",
    )
    pub.add_argument("--session", required=True)
    pub.add_argument("--idempotency-key", help="publishing again with the same key sends nothing new")
    pub.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the session (default 30)")
    pub.add_argument("text")

    tail = command(
        "tail",
        "tail:cmd_tail",
        "print a session's feed as it happens, until Ctrl-C",
        "agentbus tail 3f2c9a0e --after 12",
        "First the session's events from the log after --after, then its live feed: one line per event\n"
        "(log position, type, speaker, text); an answer's tokens and a speech's chunks stream on one line.",
    )
    tail.add_argument("session", help="the session id")
    tail.add_argument("--after", type=int, default=0, help="skip the events up to this log position (default 0)")

    credentials = command(
        "credentials",
        "credentials:cmd_credentials",
        "make a NATS cluster's credentials: an nkey per role and service, and who may do what",
        "agentbus credentials deploy/credentials --service billing",
        "Writes <dir>/worker.nk, gateway.nk and one <service>.nk per --service (seeds, 0600; kept if there),\n"
        "nats-auth.conf (every nats-server includes it: only these keys get in, each with its role's\n"
        "permissions under AGENTBUS_SUBJECT_PREFIX) and agentbus.env (for the workers: the gateways' public\n"
        "keys, and each service's by name: what a service signs acts as that service, counted against its\n"
        "own quota). Each process gets its seed as AGENTBUS_NATS_CREDENTIALS. `agentbus up` does this itself.",
        data_dir=False,
    )
    credentials.add_argument("directory", help="where to write them (made if missing)")
    credentials.add_argument(
        "--service", action="append", metavar="NAME", help="an outside service to give a seed of its own (repeatable)"
    )

    token = command(
        "token",
        "token:cmd_token",
        "issue a user's JWT (for trying it out: in production an identity provider issues them)",
        "agentbus token issue --user ada --role user --departments research",
        "Signed with AGENTBUS_JWT_SECRET (HS256), or with --private-key (RS256) for a gateway that\n"
        "verifies with AGENTBUS_JWT_PUBLIC_KEY_FILE or AGENTBUS_JWT_JWKS_FILE. The token goes in\n"
        "`Authorization: Bearer <token>` on REST and in `?token=<token>` on the socket.",
        data_dir=False,
    )
    token.add_argument("action", choices=["issue"])
    token.add_argument("--user", required=True, help="the user id (the token's `sub`)")
    token.add_argument("--role", choices=["user", "admin"], default="user")
    token.add_argument("--departments", nargs="*", default=[], metavar="D", help="the departments the user is in")
    token.add_argument("--ttl", type=int, default=86400, help="seconds the token is valid (default a day)")
    token.add_argument("--secret", help="the HS256 secret (default AGENTBUS_JWT_SECRET)")
    token.add_argument("--private-key", help="a PEM private key file: sign with RS256 instead")
    token.add_argument("--kid", help="the key id to name in the token's header (for a JWKS)")

    departments = command(
        "departments",
        "departments:cmd_departments",
        "manage departments, their members and quotas (recorded in the event log)",
        "agentbus departments quota research tokens day 100000",
        "As the admin REST API (/api/v1/admin/departments) does; on the database of a running or a\n"
        "stopped `agentbus up`, or AGENTBUS_DATABASE_URL. A user's model calls count against the\n"
        "departments their token names and those they were added to.",
    )
    actions = departments.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every department with its members, quotas and usage (as projected)")
    create = actions.add_parser("create", help="create a department")
    create.add_argument("department")
    create.add_argument("--name", default="")
    for action, what in (("add-member", "count a user's calls against it"), ("remove-member", "stop counting them")):
        member = actions.add_parser(action, help=what)
        member.add_argument("department")
        member.add_argument("user")
    quota = actions.add_parser("quota", help="set a quota: LIMIT requests or tokens per day or month (none: remove)")
    quota.add_argument("department")
    quota.add_argument("quota_type", choices=["requests", "tokens"])
    quota.add_argument("period", choices=["day", "month"])
    quota.add_argument("limit", help="a whole number, or none")

    erase = command(
        "erase",
        "erase:cmd_erase",
        "erase a session: its events become one tombstone, its history, commands and uploads go",
        "agentbus erase 3f2c9a0e",
        "As an admin's DELETE /api/v1/chat/sessions/<id>?erase=true does, on the database of a running\n"
        "or a stopped `agentbus up`, or AGENTBUS_DATABASE_URL; recorded as cli:<your login>. Exits 2\n"
        "if the session has nothing to erase.",
    )
    erase.add_argument("session", help="the session id")

    command("migrate", "tools:cmd_migrate", "create or upgrade the database schema", "agentbus migrate")

    projections = command(
        "projections",
        "tools:cmd_projections",
        "manage the read models (sessions, history, usage)",
        "agentbus projections rebuild",
        "rebuild empties the read models and projects the whole event log again, then reports what it\n"
        "rebuilt. It needs the database of a running `agentbus up`, or of a stopped one (started for it).",
    )
    projections.add_argument("action", choices=["rebuild"], help="recreate the read models from the event log")

    replay = command(
        "replay",
        "tools:cmd_replay",
        "rebuild a board or a team, or outline a session, from the event log",
        "agentbus replay board 3f2c9a0e --format json --at 42",
        "Only the database is read: that of a running `agentbus up`, or of a stopped one under\n"
        "--data-dir (started for the replay, then stopped), or AGENTBUS_DATABASE_URL.",
    )
    replay.add_argument("what", choices=["board", "team", "session"])
    replay.add_argument("id", help="the board or team id (= the id of the message that started it) or the session id")
    replay.add_argument(
        "--format", choices=["markdown", "json"], default="markdown", help="board or team output (default markdown)"
    )
    replay.add_argument("--at", type=int, help="show the board or team as it stood at this log position")

    # Every argument after `bench` goes to `python -m bench.run`, `--help` included.
    command(
        "bench",
        "tools:cmd_bench",
        "run the benchmarks in bench/ (source tree only)",
        "agentbus bench --only board",
        data_dir=False,
        add_help=False,
    )

    parser.epilog = "examples (`agentbus COMMAND --help` says more):\n" + "\n".join(examples)
    return parser


SERVING = {"up": "agentbus", "worker": "agentbus-worker", "gateway": "agentbus-gateway"}
"""The commands that serve, and the service name their spans carry unless OTEL_SERVICE_NAME gives one (`cli.tracing`)."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        args.bench_args = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    configure_logging(args.log_level, args.log_format)
    service = SERVING.get(args.command)
    if service is None:
        return int(args.func(args, Settings.from_env()) or 0)
    from .tracing import start_tracing  # only here: the other commands never load OpenTelemetry

    stop_tracing = start_tracing(service)
    try:
        return int(args.func(args, Settings.from_env()) or 0)
    finally:
        if stop_tracing is not None:
            stop_tracing()  # the spans still batched are exported before the process ends
