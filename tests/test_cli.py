"""The `agentbus` command for operators: help with examples, logs for people or collectors, publish's verdict,
what `projections rebuild` did, and the database of a stopped system."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cli import build_parser
from projections import EventLog, Projector
from projections.database import Engine
from tests.conftest import new_database
from tests.system import AGENTBUS, System, live_processes_mentioning
from tests.test_readmodels import conversation

EMBEDDED = {"AGENTBUS_NATS_URL": "", "AGENTBUS_DATABASE_URL": ""}
SERVICE_LIBRARIES = {"nats", "sqlalchemy", "asyncpg", "uvicorn", "starlette", "structlog", "pgserver"}
OUR_HEAVY_PACKAGES = {"actors", "bus", "gateway", "projections"}


def agentbus(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AGENTBUS, *args], env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=60
    )


def subcommands() -> list[str]:
    [sub] = [action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction)]
    return list(sub.choices)


# --help


def test_help_lists_every_subcommand_with_an_example() -> None:
    result = agentbus("--help")
    assert result.returncode == 0, result.stderr
    commands = subcommands()
    assert {"up", "worker", "gateway", "publish", "tail", "migrate", "projections", "replay", "bench"} <= set(commands)
    listed, examples = result.stdout.split("\nexamples")
    for name in commands:
        assert f"\n    {name} " in listed, f"{name} is not listed with what it does"
        assert f"agentbus {name}" in examples, f"{name} has no example"


@pytest.mark.parametrize("name", [name for name in subcommands() if name != "bench"])
def test_each_subcommands_help_says_what_it_does_and_shows_an_example(name: str) -> None:
    result = agentbus(name, "--help")
    assert result.returncode == 0, result.stderr
    usage, _, rest = result.stdout.partition("\n\n")
    what = rest.split("\n\n", 1)[0]
    assert usage.startswith(f"usage: agentbus {name}") and what.endswith(".") and len(what.split()) >= 4
    example = result.stdout.split("\nexample:\n", 1)[1].strip()
    assert f"agentbus {name}" in example


def test_help_imports_no_service_library_and_none_of_the_heavy_packages() -> None:
    """What keeps `agentbus --help` well under a second: every subcommand's module is imported when it runs."""
    probe = (
        "import sys\n"
        "from cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})), file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    imported = set(result.stderr.split())
    assert "cli" in imported
    assert imported & (SERVICE_LIBRARIES | OUR_HEAVY_PACKAGES) == set()


# logs


def on_a_terminal(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run `command` with its stderr on a pseudo-terminal; return its exit code and what it wrote there."""
    controller, terminal = os.openpty()
    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=terminal)
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the last writer closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(controller)
    return process.wait(60), seen.decode()


async def test_logs_are_aligned_text_on_a_terminal_and_json_lines_otherwise(fresh_database_url: str) -> None:
    """`agentbus migrate` on a new database logs each migration it applies: seen on a terminal, then through a pipe."""
    migrate = [AGENTBUS, "migrate", "--data-dir", "/nonexistent"]
    code, seen = await asyncio.to_thread(on_a_terminal, migrate, {"AGENTBUS_DATABASE_URL": fresh_database_url})
    assert code == 0, seen
    lines = [line for line in seen.splitlines() if "migration_applied" in line]
    assert lines, seen
    assert not any(line.lstrip().startswith("{") for line in lines)
    assert "\x1b[" in lines[0] and "version" in lines[0]  # coloured, with its fields as key=value

    async with new_database(fresh_database_url) as other_url:
        piped = await asyncio.to_thread(agentbus, *migrate[1:], env={"AGENTBUS_DATABASE_URL": other_url})
    assert piped.returncode == 0, piped.stderr
    records = [json.loads(line) for line in piped.stderr.splitlines()]
    assert [record["version"] for record in records if record["event"] == "migration_applied"][:2] == [1, 2]
    assert all(record["level"] == "info" and "timestamp" in record for record in records)


# projections rebuild


async def test_rebuild_returns_and_the_command_prints_the_events_replayed_and_the_rows_of_each_read_model(
    engine: Engine, fresh_database_url: str
) -> None:
    log = EventLog(engine)
    try:
        await conversation(log, "s1", turns=2)  # created, 2 × (question, answer), a turn event: 6 events
        rebuilt = await Projector(engine, log).rebuild()
    finally:
        await log.close()
    assert (rebuilt.position, rebuilt.events) == (6, 6)
    departments = {"rm_departments": 0, "rm_department_members": 0, "rm_quotas": 0, "rm_department_usage": 0}
    assert rebuilt.rows == {"rm_sessions": 1, "rm_messages": 4, "rm_usage": 0, "rm_skipped_events": 0, **departments}

    result = await asyncio.to_thread(
        agentbus,
        "projections",
        "rebuild",
        "--data-dir",
        "/nonexistent",
        env={"AGENTBUS_DATABASE_URL": fresh_database_url},
    )
    assert result.returncode == 0, result.stderr
    first, *tables = result.stdout.splitlines()
    assert first == "read models rebuilt from 6 events (the log up to position 6)"
    assert [line.split() for line in tables] == [
        ["rm_sessions", "1", "rows"],
        ["rm_messages", "4", "rows"],
        ["rm_usage", "0", "rows"],
        ["rm_skipped_events", "0", "rows"],
        *([table, "0", "rows"] for table in departments),
    ]


# publish


async def events_of(system: System, session_id: str) -> list[dict]:
    async with system.http() as client:
        return (await client.get(f"/sessions/{session_id}/events")).json()


async def test_publish_waits_for_the_session_and_prints_where_it_recorded_the_message(
    system: System, session_id: str
) -> None:
    key = uuid.uuid4().hex
    result = await asyncio.to_thread(system.publish, "--session", session_id, "--idempotency-key", key, "hello")
    assert result.returncode == 0, result.stderr
    receipt = json.loads(result.stdout)
    [recorded] = [e for e in await events_of(system, session_id) if e["event"]["type"] == "user_message"]
    assert receipt == {
        "sequence": receipt["sequence"],
        "duplicate": False,
        "idempotency_key": key,
        "message_id": recorded["event"]["message_id"],
        "position": recorded["position"],
        "taken_as": "message",
    }
    again = await asyncio.to_thread(system.publish, "--session", session_id, "--idempotency-key", key, "hello")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {**receipt, "duplicate": True}  # the first one's verdict, from the log


async def test_publish_to_an_unknown_or_invalid_session_exits_2_with_the_refusal_also_when_repeated(
    system: System,
) -> None:
    key = uuid.uuid4().hex
    for _ in range(2):  # the second is a duplicate JetStream drops: its verdict comes from the read model
        result = await asyncio.to_thread(system.publish, "--session", "no-such-session", "--idempotency-key", key, "hi")
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.strip() == (
            "agentbus: session no-such-session refused the message (unknown_session): "
            "session no-such-session does not exist"
        )
    invalid = await asyncio.to_thread(system.publish, "--session", "no such session", "hi")
    assert invalid.returncode == 2 and "invalid session id 'no such session'" in invalid.stderr


async def test_publish_to_a_closed_session_exits_2_with_the_refusal(system: System, session_id: str) -> None:
    async with system.http() as client:
        assert (await client.delete(f"/sessions/{session_id}")).status_code == 200
    result = await asyncio.to_thread(system.publish, "--session", session_id, "too late")
    assert result.returncode == 2 and result.stdout == ""
    assert f"(session_closed): session {session_id} is closed" in result.stderr
    assert [e["event"]["type"] for e in await events_of(system, session_id)] == ["session_created", "session_closed"]


async def test_publish_breaking_an_entrance_limit_exits_2_unpublished(system: System, session_id: str) -> None:
    result = await asyncio.to_thread(system.publish, "--session", session_id, "--idempotency-key", "k" * 300, "hi")
    assert result.returncode == 2, result.stderr
    assert "refused the message (too_large): idempotency_key is longer than 256 bytes" in result.stderr
    assert [e["event"]["type"] for e in await events_of(system, session_id)] == ["session_created"]


# a stopped system


@pytest.fixture
async def stopped(tmp_path: Path) -> AsyncIterator[tuple[System, str]]:
    """A system on embedded services that held one chat turn, then stopped with Ctrl-C."""
    system = System(tmp_path / "data", EMBEDDED).start(timeout=120)
    try:
        session_id = await system.create_session()
        async with system.http() as client:
            (await client.post(f"/sessions/{session_id}/messages", json={"content": "keep me"})).raise_for_status()
    finally:
        assert system.stop() == 0
    yield system, session_id


async def test_replay_and_rebuild_read_the_database_of_a_stopped_system_and_leave_nothing_running(
    stopped: tuple[System, str],
) -> None:
    system, session_id = stopped
    assert not (system.data_dir / "endpoints.json").exists()
    replayed = await asyncio.to_thread(system.run_cli, "replay", "session", session_id)
    assert replayed.returncode == 0, replayed.stderr
    outline = json.loads(replayed.stdout)
    assert outline["session_id"] == session_id and [t["status"] for t in outline["turns"]] == ["completed"]
    assert "is stopped; reading its database" in replayed.stderr
    rebuilt = await asyncio.to_thread(system.run_cli, "projections", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout.splitlines()[1].split() == ["rm_sessions", "1", "rows"]
    assert live_processes_mentioning(system.data_dir) == []
    # The data dir is free again: the system starts, with the history the rebuild made.
    system.start(timeout=120)
    try:
        messages = await system.messages(session_id)
        assert [m["role"] for m in messages] == ["user", "assistant"]
    finally:
        assert system.stop() == 0
