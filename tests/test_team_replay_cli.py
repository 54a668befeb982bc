"""A team in the real log: its history messages and usage in the read models, and REST equal to `agentbus replay team`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest

from bus import Bus
from cli import build_parser
from cli.settings import Settings
from cli.tools import cmd_replay
from gateway import GatewayContext, create_app
from projections import EventLog, NewEvent, Projector, ReadModels
from projections.database import Engine
from projections.replay import load_team, session_outline
from schemas import Subjects
from schemas.events import AssistantMessage, PhaseFailed, PhaseStarted, SessionCreated, UserMessage
from tests.test_readmodels import tables
from tests.test_team_views import T, pipeline


@pytest.fixture
async def log(engine: Engine) -> AsyncIterator[EventLog]:
    log = EventLog(engine, page_size=5)
    yield log
    await log.close()


async def team_in_session(log: EventLog) -> None:
    """Session s1 asks for team T (its id is the asking message's), the team runs, the session records the answer."""
    created = SessionCreated(session_id="s1", agent_name="assistant")
    await log.append("session-s1", [NewEvent(event=created, session_id="s1")], 0)
    ask = UserMessage(message_id=T, content="@team Build a login", idempotency_key="k1")
    await log.append("session-s1", [NewEvent(event=ask, session_id="s1")], 1)
    for version, event in enumerate(pipeline()):
        await log.append(f"team-{T}", [NewEvent(event=event, session_id="s1")], version)
    answer = AssistantMessage(message_id="a1", content="Login built with OAuth.", agent_name="team_collab")
    await log.append("session-s1", [NewEvent(event=answer, session_id="s1")], 2)


async def test_team_messages_carry_the_metadata_a_client_redraws_the_pipeline_from(
    engine: Engine, log: EventLog
) -> None:
    await team_in_session(log)
    await Projector(engine, log).rebuild()
    messages = await ReadModels(engine).list_messages("s1")
    assert [(m.role, (m.metadata or {}).get("message_type"), (m.metadata or {}).get("phase_id")) for m in messages] == [
        ("user", None, None),
        ("assistant", "team_formed", None),
        ("assistant", "team_phase_result", "p2"),
        ("assistant", "team_phase_result", "p1"),
        ("assistant", "team_review", "p2"),
        ("assistant", "team_review", "p1"),
        ("assistant", "team_phase_result", "p2"),
        ("assistant", "team_review", "p2"),
        ("assistant", "team_phase_failed", "p3"),
        ("user", "intervention", None),
        ("assistant", "team_plan_update", None),
        ("assistant", "team_phase_result", "p4"),
        ("assistant", "team_review", "p4"),
        ("assistant", "team_synthesis", None),
        ("assistant", None, None),
    ]
    formed, first = messages[1], messages[2]
    assert formed.content == "Team formed: Build a login" and formed.metadata is not None
    assert formed.metadata["team_formed"]["lead_expert"] == "Lead"
    assert [p["id"] for p in formed.metadata["team_formed"]["plan_phases"]] == ["p1", "p2", "p3"]
    assert formed.metadata["team_formed"]["experts"][1] == {
        "expert_id": "dev", "name": "Dev", "avatar": "", "color": "#111", "persona": "", "role": "member",
    }  # fmt: skip
    assert first.content == "design v1" and first.metadata == {
        "message_type": "team_phase_result", "team_id": T, "phase_id": "p2", "phase_name": "Design",
        "expert_id": "qa", "expert_name": "QA", "expert_color": "#222", "attempt": 1, "truncated": False,
    }  # fmt: skip
    revise, replanned = messages[4].metadata, messages[10].metadata
    assert revise is not None and (revise["verdict"], revise["reasons"], revise["phase_name"]) == (
        "revise", ["too vague"], "Design",
    )  # fmt: skip
    assert messages[4].content == "Revision requested.\n- too vague"
    assert replanned is not None and (replanned["revision"], [p["id"] for p in replanned["plan_phases"]]) == (
        2, ["p1", "p2", "p4"],
    )  # fmt: skip
    assert messages[9].content == "use OAuth" and messages[9].metadata == {
        "message_type": "intervention",
        "target_id": T,
    }
    assert messages[12].metadata is not None and messages[12].metadata["phase_name"] == "Build again"
    assert all(m.agent_name == "team_collab" for m in messages if m.role == "assistant")


async def test_the_teams_model_calls_count_once_in_the_session_usage_also_after_two_rebuilds(
    engine: Engine, log: EventLog
) -> None:
    """11 calls: team_formed, plan revision 2, four results, four reviews, the synthesis."""
    await team_in_session(log)
    projector = Projector(engine, log)
    await projector.rebuild()
    before = await tables(engine)
    await projector.rebuild()
    assert await tables(engine) == before
    usage = await ReadModels(engine).usage("s1")
    view = await load_team(log, T)
    assert view is not None and msgspec.to_builtins(usage) == msgspec.to_builtins(view.usage)
    assert (usage.calls, usage.prompt_tokens, usage.completion_tokens) == (11, 770, 195)


async def test_load_team_and_session_outline_read_the_log_alone(log: EventLog) -> None:
    await team_in_session(log)
    assert await load_team(log, "missing") is None
    outline = await session_outline(log, "s1")
    assert [(t.team_id, t.status, t.task, t.phases, t.completed) for t in outline.teams] == [
        (T, "completed", "Build a login", 3, 3)
    ]
    assert outline.boards == [] and outline.turns == []


@pytest.fixture
async def http(nats_url: str, subject_prefix: str, engine: Engine, log: EventLog) -> AsyncIterator[httpx.AsyncClient]:
    bus = await Bus.connect(nats_url, name="team-view-test", subjects=Subjects(subject_prefix))
    ctx = GatewayContext(bus=bus, event_log=log, read_models=ReadModels(engine))
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway/api/v1/chat") as client:
        yield client
    await bus.close()


async def replay(capsys: pytest.CaptureFixture[str], database_url: str, *args: str) -> str:
    """Run `agentbus replay …` on the database alone (no NATS) and return what it printed."""
    settings = msgspec.structs.replace(Settings.from_env(), nats_url=None, database_url=database_url)
    parsed = build_parser().parse_args(["replay", "--data-dir", "/nonexistent", *args])
    capsys.readouterr()
    # The command runs its own event loop, as from a shell.
    assert await asyncio.to_thread(cmd_replay, parsed, settings) == 0
    return capsys.readouterr().out


async def test_rest_team_view_equals_replay_team_json_also_at_a_past_position(
    http: httpx.AsyncClient, log: EventLog, fresh_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await team_in_session(log)
    rest = await http.get(f"/teams/{T}")
    assert rest.status_code == 200
    cli = json.loads(await replay(capsys, fresh_database_url, "team", T, "--format", "json"))
    assert cli == rest.json() and rest.json()["status"] == "completed"
    assert [p["id"] for p in cli["plan"]] == ["p1", "p2", "p4"] and cli["off_plan"][0]["status"] == "failed"

    events = await log.read_session("s1", after=0, limit=100)
    failed = next(r.position for r in events if isinstance(r.event, PhaseFailed))
    earlier = (await http.get(f"/teams/{T}", params={"at": failed})).json()
    assert json.loads(await replay(capsys, fresh_database_url, "team", T, "--format", "json", "--at", str(failed))) == (
        earlier
    )
    assert earlier["position"] == failed and earlier["status"] == "executing" and earlier["off_plan"] == []
    assert earlier["plan"][2]["status"] == "failed" and earlier["synthesis"] is None

    markdown = await replay(capsys, fresh_database_url, "team", T)
    assert "**Task:** Build a login" in markdown and "## No longer in the plan" in markdown
    outline = json.loads(await replay(capsys, fresh_database_url, "session", "s1"))
    assert outline["teams"][0]["team_id"] == T
    started = next(r.position for r in events if isinstance(r.event, PhaseStarted))
    assert (await http.get(f"/teams/{T}", params={"at": started})).json()["plan"][0]["status"] == "running"


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/teams/nope", 404, "unknown_team"),
        ("/teams/a.b", 400, "invalid_request"),
        (f"/teams/{T}?at=soon", 400, "invalid_request"),
        (f"/teams/{T}?at=-1", 400, "invalid_request"),
    ],
)
async def test_an_unknown_team_is_404_and_a_bad_id_or_position_is_400(
    http: httpx.AsyncClient, log: EventLog, path: str, status: int, code: str
) -> None:
    await team_in_session(log)
    answer = await http.get(path)
    assert (answer.status_code, answer.json()["code"]) == (status, code)
