"""Team pipelines through a real `agentbus up`: plan, concurrent phases, reviews, replanning, interventions, cancel, REST."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import websockets

from tests.system import System, receive_quiet, receive_until

TASK = "Build a user login feature with email and password"
DEV_TEAM = ["product_lead", "architect", "engineer", "qa"]


def of_type(frames: list[dict], kind: str) -> list[dict]:
    return [f["data"] for f in frames if f["type"] == kind]


async def run_team(system: System, session_id: str, content: str, until: str = "final_answer") -> list[dict]:
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": content}))
        return await receive_until(ws, until, timeout=90)


async def session_log(system: System, session_id: str) -> list[dict]:
    async with system.http() as client:
        return [e["event"] for e in (await client.get(f"/sessions/{session_id}/events")).json()]


async def test_a_team_plans_runs_independent_phases_at_once_reviews_each_and_answers(
    system: System, session_id: str
) -> None:
    """The issue's `done when`: a plan of ≥ 3 phases, two running at once, each phase's life, the synthesis, an answer."""
    frames = await run_team(system, session_id, f"@team {TASK}")
    types = [f["type"] for f in frames]

    formed = of_type(frames, "team_formed")[0]
    assert formed["task"] == TASK and formed["status"] == "executing"
    assert formed["lead_expert"] == "product_lead"
    assert [(e["name"], e["role"]) for e in formed["experts"]] == [
        ("product_lead", "lead"), ("architect", "member"), ("engineer", "member"), ("qa", "member"),
    ]  # fmt: skip
    assert all(e["avatar"] and e["color"] and e["persona"] and e["expert_id"] for e in formed["experts"])
    phases = formed["plan_phases"]
    assert len(phases) >= 3
    independent = [p["id"] for p in phases if not p["depends_on"]]
    assert len(independent) >= 2
    assert of_type(frames, "plan_update")[0]["plan_phases"] == phases
    assert [s["phase_id"] for s in of_type(frames, "plan_step")] == [p["id"] for p in phases]
    contracts = of_type(frames, "collaboration_contract_defined")[0]["contracts"]
    assert {c["phase_id"] for c in contracts} == {p["id"] for p in phases}

    # The independent phases both started before either finished: they ran at the same time.
    first_completed = types.index("phase_completed")
    started_before = [f["data"]["phase_id"] for f in frames[:first_completed] if f["type"] == "phase_started"]
    assert set(independent) <= set(started_before)

    for phase in phases:
        life = [
            f["type"]
            for f in frames
            if f["type"] != "plan_step"
            and phase["id"] in ((f.get("data") or {}).get("phase_id"), (f.get("data") or {}).get("to_phase_id"))
        ]
        assert life[0] == "phase_started" and life[-1] == "phase_completed", (phase["id"], life)
        assert {"expert_step", "expert_result_chunk", "expert_result", "review_result"} <= set(life), life
        result = next(r for r in of_type(frames, "expert_result") if r["phase_id"] == phase["id"])
        assert result["expert_name"] == phase["assignee"] and result["expert_color"] and result["expert_id"]
        chunks = [c for c in of_type(frames, "expert_result_chunk") if c["phase_id"] == phase["id"]]
        assert "".join(c["content"] for c in chunks).strip() == result["content"]
        assert len({c["segment"] for c in chunks}) == 1
    dependent = [p for p in phases if p["depends_on"]]
    notices = of_type(frames, "collaboration_notice")
    assert {(n["from_phase_id"], n["to_phase_id"]) for n in notices} == {
        (dep, p["id"]) for p in dependent for dep in p["depends_on"]
    }
    assert all(r["verdict"] == "accept" and r["reviewer"] == "product_lead" for r in of_type(frames, "review_result"))
    assert of_type(frames, "risk_flagged")[0]["severity"] == "high"  # passwords: the lead names the hashing risk

    synthesis = of_type(frames, "team_synthesis")[0]["content"]
    assert synthesis.startswith(f"# {TASK}")
    assert "".join(c["content"] for c in of_type(frames, "team_synthesis_chunk")).strip() == synthesis
    assert types.index("team_synthesis") < types.index("team_dissolved") < types.index("final_answer")
    assert of_type(frames, "team_dissolved")[0]["status"] == "completed"
    answer = frames[-1]
    assert answer["content"] == synthesis and answer["data"]["agent_name"] == "team_collab"

    # A reload draws the team again from history, and the answer is the session's assistant message.
    messages = await system.messages(session_id)
    assert messages[0]["role"] == "user" and messages[0]["content"] == f"@team {TASK}"
    assert messages[-1]["agent_name"] == "team_collab" and messages[-1]["content"] == synthesis
    assert messages[0]["metadata"] == {"routing": {"mode": "team", "experts": DEV_TEAM}}
    shown = [m["metadata"]["message_type"] for m in messages if "message_type" in (m["metadata"] or {})]
    assert "team_formed" in shown and shown.count("team_phase_result") == len(phases)


async def test_the_first_named_expert_leads_the_team(system: System, session_id: str) -> None:
    frames = await run_team(system, session_id, "@team:architect,engineer,qa Design a rate limiter")
    formed = of_type(frames, "team_formed")[0]
    assert formed["lead_expert"] == "architect"
    assert [e["name"] for e in formed["experts"]] == ["architect", "engineer", "qa"]
    assert {p["assignee"] for p in formed["plan_phases"]} <= {"engineer", "qa"}
    assert {r["reviewer"] for r in of_type(frames, "review_result")} == {"architect"}
    assert frames[-1]["type"] == "final_answer"


@pytest.mark.parametrize(
    ("content", "code", "said"),
    [
        ("@team", "team_needs_task", "for example: @team Build"),
        ("@team:architect,wizard,oracle Build it", "unknown_experts", "unknown experts: wizard, oracle (known:"),
    ],
)
async def test_a_team_without_a_task_or_with_unknown_experts_is_refused_and_nothing_is_recorded(
    system: System, session_id: str, content: str, code: str, said: str
) -> None:
    async with websockets.connect(system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": content}))
        error = (await receive_until(ws, "error"))[-1]
    assert error["data"]["code"] == code and said in error["data"]["message"]
    if code == "unknown_experts":
        assert "architect" in error["data"]["message"]  # the known experts are named
    assert [e["type"] for e in await session_log(system, session_id)] == ["session_created"]


async def test_a_failed_phase_is_replanned_and_the_team_still_finishes(system: System, session_id: str) -> None:
    frames = await run_team(system, session_id, f"@team {TASK} [fail:implementation]")
    types = [f["type"] for f in frames]
    failed = of_type(frames, "phase_failed")
    assert [f["phase_id"] for f in failed] == ["implementation"] and "told to fail" in failed[0]["reason"]
    replanning = of_type(frames, "replanning")[0]
    assert replanning["trigger"] == "phase_failed" and "implementation" in replanning["reason"]
    assert types.index("phase_failed") < types.index("replanning")
    revised = [u for u in of_type(frames, "plan_update") if u["revision"] == 2]
    assert len(revised) == 1 and types.index("replanning") < types.index("plan_update", types.index("replanning"))
    new_ids = [p["id"] for p in revised[0]["plan_phases"]]
    assert "implementation-retry" in new_ids and "implementation" not in new_ids
    completed = [c["phase_id"] for c in of_type(frames, "phase_completed")]
    assert sorted(completed) == sorted(new_ids) and len(completed) == len(set(completed))
    assert of_type(frames, "team_dissolved")[0]["status"] == "completed"
    assert frames[-1]["type"] == "final_answer"


async def test_a_team_whose_replans_run_out_fails_with_a_clear_message(system: System, session_id: str) -> None:
    markers = "[fail:implementation] [fail:implementation-retry] [fail:implementation-retry-retry]"
    frames = await run_team(system, session_id, f"@team {TASK} {markers}", until="error")
    assert len(of_type(frames, "phase_failed")) == 3 and len(of_type(frames, "replanning")) == 2
    error = frames[-1]["data"]
    assert error["code"] == "team_failed" and error["status"] == "failed"
    assert "the 2 replans allowed are used up" in error["message"]
    log = await session_log(system, session_id)
    assert log[-1]["type"] == "message_failed" and log[-1]["code"] == "team_failed"
    assert "final_answer" not in [f["type"] for f in frames]


@pytest.fixture
def slow_system_env(system_env: dict[str, str]) -> dict[str, str]:
    return {**system_env, "AGENTBUS_OFFLINE_DELAY": "0.02"}


@pytest.fixture
def slow_system(tmp_path: Path, slow_system_env: dict[str, str]):  # type: ignore[no-untyped-def]
    system = System(tmp_path / "data", slow_system_env).start()
    yield system
    if system.process is not None:
        assert system.stop() == 0


async def test_an_intervention_is_acknowledged_given_to_the_next_steps_and_makes_the_lead_replan(
    slow_system: System,
) -> None:
    session_id = await slow_system.create_session()
    async with websockets.connect(slow_system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": f"@team {TASK}"}))
        await receive_until(ws, "phase_started", timeout=60)
        await ws.send(json.dumps({"type": "message", "content": "Use passkeys as well"}))
        frames = await receive_until(ws, "final_answer", timeout=120)
    types = [f["type"] for f in frames]
    assert of_type(frames, "team_intervention_ack")[0]["content"] == "Use passkeys as well"
    assert of_type(frames, "user_intervention")[0]["content"] == "Use passkeys as well"
    replanning = of_type(frames, "replanning")[0]
    assert replanning["trigger"] == "intervention" and "Use passkeys as well" in replanning["reason"]
    assert [u["revision"] for u in of_type(frames, "plan_update")] == [2]
    assert types.index("user_intervention") < types.index("replanning") < types.index("plan_update")
    # Every phase started after the intervention took it into account, and so did the synthesis.
    after = frames[types.index("user_intervention") :]
    later = {s["phase_id"] for s in of_type(after, "phase_started")}
    later_results = [r["content"] for r in of_type(after, "expert_result") if r["phase_id"] in later]
    assert later_results and all("Use passkeys as well" in content for content in later_results)
    assert "Use passkeys as well" in frames[-1]["content"]
    log = await session_log(slow_system, session_id)
    assert [e["type"] for e in log].count("user_message") == 1  # the intervention is the team's, not a new message


async def test_cancel_stops_the_team_records_it_and_the_socket_is_told(slow_system: System) -> None:
    session_id = await slow_system.create_session()
    async with websockets.connect(slow_system.ws_base + session_id) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "message", "content": f"@team {TASK}"}))
        await receive_until(ws, "expert_result_chunk", timeout=60)
        await ws.send(json.dumps({"type": "cancel"}))
        frames = await receive_until(ws, "error", timeout=30)
        later = await receive_quiet(ws, quiet=1.5)
    error = frames[-1]["data"]
    assert error["code"] == "team_cancelled" and "cancelled" in error["message"]
    assert not [f for f in later if f["type"] in ("expert_result", "phase_completed", "team_synthesis", "final_answer")]
    log = await session_log(slow_system, session_id)
    dissolved = [e for e in log if e["type"] == "team_dissolved"]
    assert len(dissolved) == 1 and dissolved[0]["status"] == "cancelled"
    assert log[-1]["type"] == "message_failed" and log[-1]["code"] == "cancelled"


async def test_rest_returns_a_teams_final_answer(system: System, session_id: str) -> None:
    async with system.http() as client:
        response = await client.post(f"/sessions/{session_id}/messages", json={"content": f"@team {TASK}"}, timeout=90)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["agent_name"] == "team_collab" and body["content"].startswith(f"# {TASK}")


async def test_rest_answers_a_failed_team_and_an_intervention_with_clear_errors(slow_system: System) -> None:
    session_id = await slow_system.create_session()
    markers = "[fail:implementation] [fail:implementation-retry] [fail:implementation-retry-retry]"
    async with slow_system.http() as client:
        team = asyncio.create_task(
            client.post(f"/sessions/{session_id}/messages", json={"content": f"@team {TASK} {markers}"}, timeout=120)
        )
        async with websockets.connect(slow_system.ws_base + session_id) as ws:
            await ws.recv()
            await receive_until(ws, "phase_started", timeout=60)
        joined = await client.post(f"/sessions/{session_id}/messages", json={"content": "Keep it simple"}, timeout=30)
        failed = await team
    assert joined.status_code == 409 and joined.json()["code"] == "taken_as_intervention"
    assert failed.status_code == 500 and failed.json()["code"] == "team_failed"
    assert "replans allowed are used up" in failed.json()["detail"]
