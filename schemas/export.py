"""Generate the JSON Schemas of the wire messages from their msgspec Structs, one file per family.

    python -m schemas.export            # rewrite schemas/jsonschema/
    python -m schemas.export --check    # exit 1 if the committed files differ from the code

The files are committed so that a service in any language can validate what it
sends and reads without running Python; `tests/test_jsonschema_drift.py`
fails when they no longer match the Structs. Each file is a JSON Schema
(draft 2020-12) whose root accepts any message of its family, with every
Struct under `$defs`; unions carry msgspec's OpenAPI `discriminator` on `type`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from .agents import AgentList, ListAgents
from .commands import CreateSession, SessionCommand
from .envelope import FeedItem
from .events import AnyEvent
from .experts import ExpertReply, ExpertRequest, WithdrawExperts
from .frames import AnyFrame
from .history import EventsReply, ReadEvents
from .replies import CreateSessionReply

DIRECTORY = Path(__file__).parent / "jsonschema"
"""Where the generated files are committed."""

DIALECT = "https://json-schema.org/draft/2020-12/schema"


class Family(NamedTuple):
    """One file: the messages that travel in one kind of place."""

    name: str
    description: str
    roots: tuple[Any, ...]


FAMILIES = (
    Family(
        "commands",
        "Session commands, published to the JetStream subject `<prefix>.session.<sid>.cmd` "
        "(header `Nats-Msg-Id: <sid>:<idempotency key>`).",
        (SessionCommand,),
    ),
    Family(
        "requests",
        "Request bodies: `create_session` on `<prefix>.sessions.create`, "
        "`read_events` on `<prefix>.session.<sid>.events`, `list_agents` on `<prefix>.agents.list`.",
        (CreateSession, ReadEvents, ListAgents),
    ),
    Family(
        "replies",
        "Replies to the requests: `session_ready` or `error` to a create, `events_page` or `error` to an events "
        "request, `agent_list` to an agents request.",
        (CreateSessionReply, EventsReply, AgentList),
    ),
    Family(
        "events",
        "Persisted events: the `event` field of an envelope (`envelope.json`), one per fact in the log.",
        (AnyEvent,),
    ),
    Family(
        "frames",
        "Ephemeral frames of the live subject `<prefix>.session.<sid>.evt` (never persisted).",
        (AnyFrame,),
    ),
    Family(
        "envelope",
        "What the live subject `<prefix>.session.<sid>.evt` carries: a recorded event "
        "(`type` `event`, with its log `position`) or a frame.",
        (FeedItem,),
    ),
    Family(
        "experts",
        "Requests boards and teams send their experts on `<prefix>.actor.expert.<expert_id>`, "
        "the answers, and the withdrawal broadcast on `<prefix>.actor.expert_withdrawal.<owner_id>`.",
        (ExpertRequest, ExpertReply, WithdrawExperts),
    ),
)


def schema_of(family: Family) -> dict[str, Any]:
    """Return the JSON Schema document of one family."""
    roots, components = msgspec.json.schema_components(family.roots, ref_template="#/$defs/{name}")
    document: dict[str, Any] = {
        "$schema": DIALECT,
        "$id": f"agentbus/{family.name}.json",
        "title": f"agentbus {family.name}",
        "description": family.description,
    }
    if len(roots) == 1:
        document.update(roots[0])
    else:
        document["anyOf"] = roots
    document["$defs"] = components
    return document


def render() -> dict[str, str]:
    """Return every file's name and text, as they are committed."""
    return {
        f"{family.name}.json": json.dumps(schema_of(family), indent=2, ensure_ascii=False) + "\n" for family in FAMILIES
    }


def differences(directory: Path = DIRECTORY) -> list[str]:
    """Return the names of the files in `directory` that are missing, stale or extra, compared with the code."""
    wanted = render()
    present = {path.name for path in directory.glob("*.json")} if directory.is_dir() else set()
    stale = [name for name, text in wanted.items() if name not in present or (directory / name).read_text() != text]
    return sorted(stale + [name for name in present - set(wanted)])


def write(directory: Path = DIRECTORY) -> list[str]:
    """Write every file into `directory` (removing files of families that are gone); return what changed."""
    changed = differences(directory)
    directory.mkdir(parents=True, exist_ok=True)
    wanted = render()
    for name in changed:
        path = directory / name
        if name in wanted:
            path.write_text(wanted[name])
        else:
            path.unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", nargs="?", type=Path, default=DIRECTORY)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file differs")
    args = parser.parse_args(argv)
    if args.check:
        stale = differences(args.directory)
        for name in stale:
            print(f"{args.directory / name} differs from the Structs", file=sys.stderr)
        if stale:
            print("regenerate with: python -m schemas.export", file=sys.stderr)
        return 1 if stale else 0
    for name in write(args.directory):
        print(f"wrote {args.directory / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
