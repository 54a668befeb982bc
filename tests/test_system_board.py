"""Board meetings through a real `agentbus up`: the WebSocket flow, interventions, cancel, history, replay."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest
import websockets

from tests.system import AGENTBUS, System, receive_quiet, receive_until

TOPIC = "Should we move our monolith to microservices?"
DEFAULT_SPEAKERS = ["pragmatist", "skeptic", "visionary"]


def milestones(frames: list[dict]) -> list[tuple]:
    """The board's frames reduced to (type, round, expert), chunks of one speech collapsed into one entry."""
    out: list[tuple] = []
    for frame in frames:
        kind, data = frame["type"], frame.get("data") or {}
        if kind == "expert_speech_chunk":
            entry = ("chunks", data["round"], data["expert_name"])
            if out and out[-1] == entry:
                continue
        elif kind == "expert_speech":
            entry = ("expert_speech", data["round"], data["expert_name"])
        elif kind == "round_summary":
            entry = ("round_summary", data["round"], data["moderator_name"])
        elif kind in ("board_started", "board_concluded", "final_answer"):
            entry = (kind,)
        else:
            continue
        out.append(entry)
    return out


async def test_a_board_over_the_websocket_yields_every_step_in_order(system: System, session_id: str) -> None:
    """The issue's `done when`: board_started, each expert's chunks then speech, a summary per round, conclusion, answer."""
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": f"@board rounds=2 {TOPIC}"}))
        frames = await receive_until(ws, "final_answer", timeout=60)
    expected: list[tuple] = [("board_started",)]
    for round_ in (1, 2):
        for name in DEFAULT_SPEAKERS:
            expected += [("chunks", round_, name), ("expert_speech", round_, name)]
        expected.append(("round_summary", round_, "moderator"))
    expected += [("board_concluded",), ("final_answer",)]
    assert milestones(frames) == expected

    started = next(f for f in frames if f["type"] == "board_started")["data"]
    assert started["topic"] == TOPIC and started["max_rounds"] == 2
    assert started["team_id"] == started["board_id"]  # the seed's name for it
    assert [(e["name"], e["is_moderator"]) for e in started["experts"]] == [
        ("moderator", True), ("pragmatist", False), ("skeptic", False), ("visionary", False),
    ]  # fmt: skip
    assert all(e["avatar"] and e["color"] and e["persona"] for e in started["experts"])
    for speech in (f["data"] for f in frames if f["type"] == "expert_speech"):
        chunks = [f["data"]["content"] for f in frames if f["type"] == "expert_speech_chunk"
                  and (f["data"]["round"], f["data"]["expert_name"]) == (speech["round"], speech["expert_name"])]  # fmt: skip
        assert "".join(chunks).strip() == speech["content"]
        assert TOPIC in speech["content"] and speech["role"] == "expert"
    final = frames[-1]["content"]
    for section in ("## Summary", "## Decision advice", "## Consensus", "## Dissent", "_2 rounds of discussion_"):
        assert section in final
    assert TOPIC in final


async def test_history_redraws_the_meeting_and_the_answer_is_the_boards(system: System, session_id: str) -> None:
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": f"@board:skeptic,economist rounds=1 {TOPIC}"}))
        final = (await receive_until(ws, "final_answer", timeout=60))[-1]
    messages = await system.messages(session_id)
    kinds = [(m["role"], (m["metadata"] or {}).get("message_type")) for m in messages]
    assert kinds == [
        ("user", None),
        ("assistant", "board_started"),
        ("assistant", "board_speech"),
        ("assistant", "board_speech"),
        ("assistant", "board_summary"),
        ("assistant", "board_conclusion"),
        ("assistant", None),
    ]
    # The user's message is shown as the seed stored it: the clean topic, the routing beside it.
    assert messages[0]["content"] == f"@board {TOPIC}"
    assert messages[0]["metadata"]["routing"] == {
        "mode": "board", "experts": ["moderator", "skeptic", "economist"], "rounds": 1,
    }  # fmt: skip
    started = messages[1]["metadata"]["board_started"]
    assert started["topic"] == TOPIC and [e["name"] for e in started["experts"]] == [
        "moderator",
        "skeptic",
        "economist",
    ]
    speech = messages[2]["metadata"]
    assert (speech["expert_name"], speech["board_round"], speech["board_role"]) == ("skeptic", 1, "expert")
    assert speech["expert_avatar"] and speech["expert_color"]
    assert messages[4]["metadata"]["board_role"] == "summary"
    assert messages[5]["metadata"]["board_conclusion"]["total_rounds"] == 1
    assert (messages[-1]["agent_name"], messages[-1]["content"]) == ("board_meeting", final["content"])


async def test_an_intervention_is_acknowledged_and_heard_by_the_next_speaker(
    tmp_path: Path, system_env: dict[str, str]
) -> None:
    env = {
        **system_env,
        "AGENTBUS_OFFLINE_DELAY": "0.01",
    }
    system = System(tmp_path / "data", env).start()
    try:
        session_id = await system.create_session()
        async with websockets.connect(system.ws_base + session_id) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "message", "content": f"@board rounds=3 {TOPIC}"}))
            await receive_until(ws, "expert_speech", timeout=30)
            await ws.send(
                json.dumps({"type": "message", "content": "Our team is five people; reach consensus quickly"})
            )
            frames = await receive_until(ws, "final_answer", timeout=60)
        ack = next(f for f in frames if f["type"] == "team_intervention_ack")
        assert ack["data"]["content"] == "Our team is five people; reach consensus quickly"
        intervention = next(i for i, f in enumerate(frames) if f["type"] == "user_intervention")
        # The speech under way when it arrived may not hear it; every later one does.
        after = [f["data"]["content"] for f in frames[intervention:] if f["type"] == "expert_speech"]
        assert len(after) >= 2 and all("Our team is five people" in content for content in after[1:])
        # The offline moderator agrees to the user's call for consensus: the board ends early.
        summaries = [f["data"] for f in frames if f["type"] == "round_summary"]
        assert summaries[-1]["consensus"] is True and len(summaries) < 3
        assert f"_{len(summaries)} round" in frames[-1]["content"]
        messages = await system.messages(session_id)
        assert [m["role"] for m in messages].count("user") == 2  # the board message and the intervention
        assert messages[-1]["agent_name"] == "board_meeting"
    finally:
        assert system.stop() == 0


async def test_cancel_ends_the_board_with_board_failed_and_an_error_frame(
    tmp_path: Path, system_env: dict[str, str]
) -> None:
    env = {
        **system_env,
        "AGENTBUS_OFFLINE_DELAY": "0.02",
    }
    system = System(tmp_path / "data", env).start()
    try:
        session_id = await system.create_session()
        async with websockets.connect(system.ws_base + session_id) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "message", "content": f"@board {TOPIC}"}))
            await receive_until(ws, "expert_speech_chunk", timeout=30)
            await ws.send(json.dumps({"type": "cancel"}))
            result = (await receive_until(ws, "result", timeout=30))[-1]
            assert result["data"]["status"] == "cancelled" and result["data"]["board_id"] and "position" in result
            # The session is free again: the next message is an ordinary chat turn.
            await ws.send(json.dumps({"type": "message", "content": "hello again"}))
            answer = (await receive_until(ws, "final_answer", timeout=30))[-1]
        assert 'You said: "hello again"' in answer["content"]
        async with system.http() as client:
            log = (await client.get(f"/sessions/{session_id}/events")).json()
        failed = [e["event"] for e in log if e["event"]["type"] == "board_failed"]
        assert len(failed) == 1 and failed[0]["cancelled"] is True
        assert not any(e["event"]["type"] == "board_concluded" for e in log)
    finally:
        assert system.stop() == 0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("@board", "needs a topic, for example: @board "),
        ("@board rounds=2   ", "needs a topic"),
        ("@board:skeptic,nobody,ghost Is it time?", "unknown experts: nobody, ghost"),
    ],
)
async def test_a_board_without_topic_or_with_unknown_experts_is_refused_and_nothing_starts(
    system: System, session_id: str, content: str, expected: str
) -> None:
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": content}))
        error = (await receive_until(ws, "error"))[-1]
        assert expected in error["data"]["message"]
        assert await receive_quiet(ws, 0.5) == []
    async with system.http() as client:
        log = (await client.get(f"/sessions/{session_id}/events")).json()
    assert [e["event"]["type"] for e in log] == ["session_created"]


async def test_replay_board_json_equals_the_rest_view_and_replay_session_lists_it(
    system: System, session_id: str
) -> None:
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": "hello"}))
        await receive_until(ws, "final_answer")
        await ws.send(json.dumps({"type": "message", "content": f"@board rounds=1 {TOPIC}"}))
        frames = await receive_until(ws, "final_answer", timeout=60)
    board_id = next(f for f in frames if f["type"] == "board_started")["data"]["board_id"]
    async with system.http() as client:
        rest = (await client.get(f"/boards/{board_id}")).json()
        earlier = (
            await client.get(f"/boards/{board_id}", params={"at": rest["rounds"][0]["speeches"][0]["position"]})
        ).json()
        missing = await client.get("/boards/nope")

    def replay(*args: str) -> subprocess.CompletedProcess[str]:
        # Only the database: no NATS URL in the environment, no endpoints.json to find one in.
        env = {**system.env, "AGENTBUS_NATS_URL": ""}
        return subprocess.run(
            [AGENTBUS, "replay", "--data-dir", "/nonexistent", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )

    cli = replay("board", board_id, "--format", "json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == rest
    assert rest["status"] == "concluded" and rest["topic"] == TOPIC and len(rest["rounds"][0]["speeches"]) == 3
    assert json.loads(replay("board", board_id, "--format", "json", "--at", str(earlier["position"])).stdout) == earlier
    assert (
        earlier["status"] == "running" and len(earlier["rounds"][0]["speeches"]) == 1 and earlier["conclusion"] is None
    )
    markdown = replay("board", board_id).stdout
    assert f"**Topic:** {TOPIC}" in markdown and "## Round 1" in markdown and "## Conclusion" in markdown
    assert missing.status_code == 404

    outline = json.loads(replay("session", session_id).stdout)
    assert [b["board_id"] for b in outline["boards"]] == [board_id]
    assert outline["boards"][0]["speeches"] == 3 and outline["boards"][0]["status"] == "concluded"
    assert [t["status"] for t in outline["turns"]] == ["completed"]
    await asyncio.sleep(0)
