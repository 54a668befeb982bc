"""Board events in message history: metadata to redraw the meeting, identical after a rebuild, and replay from the log."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from projections import EventLog, NewEvent, Projector, ReadModels
from projections.database import Engine
from projections.replay import load_board, session_outline
from schemas.events import (
    BoardConcluded,
    BoardStarted,
    ExpertProfile,
    ExpertSpeech,
    RoundSummary,
    SessionCreated,
    UserIntervention,
    UserMessage,
)
from tests.test_readmodels import tables


@pytest.fixture
async def log(engine: Engine) -> AsyncIterator[EventLog]:
    log = EventLog(engine, page_size=3)
    yield log
    await log.close()


async def meeting(log: EventLog) -> None:
    await log.append(
        "session-s1", [NewEvent(event=SessionCreated(session_id="s1", agent_name="assistant"), session_id="s1")], 0
    )
    ask = UserMessage(message_id="b1", content="@board rounds=1 T", idempotency_key="k")
    await log.append("session-s1", [NewEvent(event=ask, session_id="s1")], 1)
    board = [
        BoardStarted(
            board_id="b1", topic="T", max_rounds=1,
            experts=[ExpertProfile(name="chair", is_moderator=True), ExpertProfile(name="a", avatar="A", color="#111")],
        ),
        ExpertSpeech(board_id="b1", round=1, expert_name="a", expert_avatar="A", expert_color="#111", content="speech"),
        UserIntervention(target_id="b1", content="hurry", idempotency_key="k2"),
        RoundSummary(board_id="b1", round=1, moderator_name="chair", content="sum", consensus=True),
        BoardConcluded(board_id="b1", summary="done", decision_advice="go", consensus_points=["x"], total_rounds=1),
    ]  # fmt: skip
    for version, event in enumerate(board):
        await log.append("board-b1", [NewEvent(event=event, session_id="s1")], version)


async def test_board_messages_carry_the_metadata_a_client_redraws_the_meeting_from(
    engine: Engine, log: EventLog
) -> None:
    await meeting(log)
    await Projector(engine, log).rebuild()
    messages = await ReadModels(engine).list_messages("s1")
    assert [(m.role, m.content, (m.metadata or {}).get("message_type")) for m in messages] == [
        ("user", "@board rounds=1 T", None),
        ("assistant", "Board meeting started: T", "board_started"),
        ("assistant", "speech", "board_speech"),
        ("user", "hurry", "intervention"),
        ("assistant", "sum", "board_summary"),
        ("assistant", "done", "board_conclusion"),
    ]
    started, speech, _, summary, conclusion = (m.metadata for m in messages[1:])
    assert started["board_started"]["experts"][1] == {
        "name": "a", "avatar": "A", "color": "#111", "persona": "", "is_moderator": False,
    }  # fmt: skip
    assert {k: speech[k] for k in ("expert_name", "expert_avatar", "expert_color", "board_round", "board_role")} == {
        "expert_name": "a", "expert_avatar": "A", "expert_color": "#111", "board_round": 1, "board_role": "expert",
    }  # fmt: skip
    assert (summary["board_role"], summary["consensus"]) == ("summary", True)
    assert conclusion["board_conclusion"]["decision_advice"] == "go" and conclusion["board_round"] == 1
    assert all(m.agent_name == "board_meeting" for m in messages if m.role == "assistant")


async def test_rebuild_with_board_messages_gives_identical_tables(engine: Engine, log: EventLog) -> None:
    await meeting(log)
    projector = Projector(engine, log)
    await projector.rebuild()
    before = await tables(engine)
    await projector.rebuild()
    assert await tables(engine) == before and len(before[1]) == 6


async def test_load_board_and_session_outline_read_the_log_alone(log: EventLog) -> None:
    await meeting(log)
    view = await load_board(log, "b1")
    assert view is not None and view.status == "concluded" and view.rounds[0].interventions[0].content == "hurry"
    assert (await load_board(log, "b1", at=view.timeline[1].position)).rounds[0].summaries == []  # type: ignore[union-attr]
    assert await load_board(log, "missing") is None
    outline = await session_outline(log, "s1")
    assert [(b.board_id, b.status, b.rounds, b.speeches) for b in outline.boards] == [("b1", "concluded", 1, 1)]
    assert outline.turns == []
