"""`agentbus up` stops in order, fast and leaving nothing behind; one data dir serves one instance.

Ctrl-C in a terminal reaches the whole foreground process group; these tests
send SIGINT to the group of an `agentbus up` started in a group of its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import websockets

from tests.system import AGENTBUS, System, live_processes_mentioning, process_alive, receive_until

EMBEDDED = {"AGENTBUS_NATS_URL": "", "AGENTBUS_DATABASE_URL": ""}
STOP_BOUND = 5.0
"""Seconds from Ctrl-C to the exit of `agentbus up`, the bound the issue names."""
STOP_LINES = 10
"""At most this many lines from the signal to the exit: a few human-readable ones, not a flood of warnings."""
SPEAKERS = ["pragmatist", "skeptic", "visionary"]


def server_pids(data_dir: Path) -> list[int]:
    """The pids of the embedded nats-server and postmaster, from their pid files."""
    nats = int((data_dir / "nats" / "nats-server.pid").read_text())
    postmaster = int((data_dir / "pg" / "postmaster.pid").read_text().split("\n", 1)[0])
    return [nats, postmaster]


async def test_ctrl_c_to_the_group_stops_an_idle_up_within_5s_with_exit_0_and_nothing_left(tmp_path: Path) -> None:
    data_dir = tmp_path / "agentbus"
    system = System(data_dir, EMBEDDED).start(timeout=120, own_group=True)
    pids = server_pids(data_dir)

    stopped = system.interrupt_group(signal.SIGINT)

    assert stopped.code == 0, stopped.output
    assert stopped.seconds < STOP_BOUND, stopped.output
    assert [pid for pid in pids if process_alive(pid)] == []
    assert live_processes_mentioning(data_dir) == []
    assert "agentbus stopped" in stopped.output
    assert len(stopped.output.splitlines()) <= STOP_LINES, stopped.output
    assert not (data_dir / "endpoints.json").exists()


async def test_ctrl_c_mid_board_stops_within_5s_and_the_next_up_concludes_the_board_from_its_history(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "agentbus"
    system = System(data_dir, {**EMBEDDED, "AGENTBUS_OFFLINE_DELAY": "0.05"}).start(timeout=120, own_group=True)
    session_id = await system.create_session()
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": "@board rounds=3 Should we rewrite in Rust?"}))
        await receive_until(ws, "expert_speech_chunk", timeout=60)  # an expert is mid-speech
        pids = server_pids(data_dir)
        # In a thread, so that this client answers the server's closing of the WebSocket, as a browser would.
        stopped = await asyncio.to_thread(system.interrupt_group, signal.SIGINT)

    assert stopped.code == 0, stopped.output
    assert stopped.seconds < STOP_BOUND, stopped.output
    assert [pid for pid in pids if process_alive(pid)] == []
    assert live_processes_mentioning(data_dir) == []
    assert len(stopped.output.splitlines()) <= STOP_LINES, stopped.output

    system.env["AGENTBUS_OFFLINE_DELAY"] = "0.005"  # the rest of the meeting, quickly
    system.start(timeout=120, own_group=True)
    try:
        async with asyncio.timeout(120):
            while (
                not (messages := await system.messages(session_id))
                or messages[-1]["agent_name"] != "board_meeting"
                or messages[-1]["metadata"]
            ):
                await asyncio.sleep(0.2)
        assert messages[0]["role"] == "user" and messages[0]["content"].endswith("Should we rewrite in Rust?")
        async with system.http() as client:
            log = [e["event"] for e in (await client.get(f"/sessions/{session_id}/events")).json()]
        types = [e["type"] for e in log]
        speeches = [(e["round"], e["expert_name"]) for e in log if e["type"] == "expert_speech"]
        assert speeches == [(r, name) for r in (1, 2, 3) for name in SPEAKERS]
        for once in ("user_message", "board_started", "board_concluded", "assistant_message"):
            assert types.count(once) == 1, once
        assert "board_failed" not in types  # the cut recorded nothing final
    finally:
        assert system.interrupt_group(signal.SIGTERM).code == 0


async def test_a_second_up_on_a_data_dir_in_use_is_refused_naming_the_first_which_keeps_serving(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "agentbus"
    first = System(data_dir, EMBEDDED).start(timeout=120, own_group=True)
    try:
        assert first.process is not None
        endpoints = (data_dir / "endpoints.json").read_bytes()
        pids = server_pids(data_dir)

        second = first.run_cli("up", "--port", "0")

        assert second.returncode != 0
        assert "in use by another `agentbus up`" in second.stderr
        assert f"pid {first.process.pid}" in second.stderr and first.http_url in second.stderr
        assert (data_dir / "endpoints.json").read_bytes() == endpoints
        assert all(process_alive(pid) for pid in pids)
        session_id = await first.create_session()  # the worker, NATS and PostgreSQL all answer
        assert await first.messages(session_id) == []
    finally:
        assert first.interrupt_group().code == 0


def test_a_busy_http_port_is_refused_before_any_server_starts(tmp_path: Path) -> None:
    data_dir = tmp_path / "agentbus"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = subprocess.run(
            [AGENTBUS, "up", "--data-dir", str(data_dir), "--port", str(port)],
            env={**os.environ, **EMBEDDED},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert refused.returncode != 0
    assert f"cannot serve HTTP on 127.0.0.1:{port}" in refused.stderr
    assert "already in use" in refused.stderr.lower()
    assert not (data_dir / "nats").exists() and not (data_dir / "pg").exists()
    assert live_processes_mentioning(data_dir) == []


async def test_an_orphan_postgres_and_a_stale_pgserver_pid_file_are_cleaned_up_by_the_next_up(
    tmp_path: Path,
) -> None:
    """What a killed earlier version left: a postgres still running on the data dir, its pid file naming the dead."""
    data_dir = tmp_path / "agentbus"
    system = System(data_dir, EMBEDDED).start(timeout=120, own_group=True)
    session_id = await system.create_session()
    assert system.interrupt_group().code == 0

    orphan_pid = start_orphan_postgres(data_dir / "pg")
    killed_pid = exited_pid()
    (data_dir / "pg" / ".handle_pids.json").write_text(json.dumps([killed_pid]))
    try:
        assert process_alive(orphan_pid)
        system.start(timeout=120, own_group=True)
        assert not process_alive(orphan_pid)
        assert await system.messages(session_id) == []  # the same database, now served by us
        stopped = system.interrupt_group()
        assert stopped.code == 0 and stopped.seconds < STOP_BOUND, stopped.output
        assert live_processes_mentioning(data_dir) == []
        assert not (data_dir / "pg" / ".handle_pids.json").exists()
    finally:
        if process_alive(orphan_pid):
            os.kill(orphan_pid, signal.SIGQUIT)


def start_orphan_postgres(pg_dir: Path) -> int:
    """Start postgres on `pg_dir` as pgserver does (pg_ctl, detached) from a process that exits without cleanup."""
    started = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", ORPHAN_SCRIPT, str(pg_dir)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return int(started.stdout)


def exited_pid() -> int:
    """The pid of a process that has exited (as a killed instance's pid left in a registry)."""
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True).stdout)


ORPHAN_SCRIPT = """
import sys
import pgserver
server = pgserver.get_server(sys.argv[1], cleanup_mode=None)
print(server.get_pid())
"""
