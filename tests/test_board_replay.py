"""Replay of a board is a pure fold: total on any event sequence, order-preserving, and `at` is a prefix."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.boards import BoardView, fold
from projections.replay import board_markdown
from schemas.envelope import EventMeta, RecordedEvent
from schemas.events import (
    AnyEvent,
    BoardConcluded,
    BoardFailed,
    BoardStarted,
    ExpertProfile,
    ExpertSpeech,
    RoundSummary,
    UserIntervention,
    UserMessage,
)

names = st.sampled_from(["a", "b", "chair"])
rounds = st.integers(min_value=0, max_value=4)
texts = st.text(max_size=20)

board_events = st.one_of(
    st.builds(
        BoardStarted,
        board_id=st.just("b1"),
        topic=texts,
        experts=st.lists(st.builds(ExpertProfile, name=names, is_moderator=st.booleans()), max_size=3),
        max_rounds=rounds,
    ),
    st.builds(ExpertSpeech, board_id=st.just("b1"), round=rounds, expert_name=names, content=texts),
    st.builds(
        RoundSummary, board_id=st.just("b1"), round=rounds, moderator_name=names, content=texts, consensus=st.booleans()
    ),
    st.builds(UserIntervention, target_id=st.just("b1"), content=texts),
    st.builds(
        BoardConcluded,
        board_id=st.just("b1"),
        summary=texts,
        consensus_points=st.lists(texts, max_size=2),
        dissent_points=st.lists(texts, max_size=2),
        total_rounds=rounds,
    ),
    st.builds(BoardFailed, board_id=st.just("b1"), reason=texts, cancelled=st.booleans()),
    st.builds(UserMessage, message_id=st.just("m"), content=texts, idempotency_key=st.just("k")),
)


@st.composite
def logs(draw: st.DrawFn) -> list[RecordedEvent]:
    events: list[AnyEvent] = draw(st.lists(board_events, max_size=30))
    gaps = draw(st.lists(st.integers(min_value=1, max_value=5), min_size=len(events), max_size=len(events)))
    position, recorded = 0, []
    for version, (event, gap) in enumerate(zip(events, gaps, strict=True), start=1):
        position += gap
        recorded.append(
            RecordedEvent(
                position=position,
                stream="board-b1",
                version=version,
                session_id="s1",
                event_id=str(version),
                schema=1,
                recorded_at=datetime(2026, 1, 1, tzinfo=UTC),
                meta=EventMeta(),
                event=event,
            )
        )
    return recorded


def _board_only(log: list[RecordedEvent]) -> list[RecordedEvent]:
    return [r for r in log if not isinstance(r.event, UserMessage)]


@settings(max_examples=300)
@given(logs())
def test_replay_is_total_and_shows_every_board_event_once_in_log_order(log: list[RecordedEvent]) -> None:
    view = fold("b1", log)
    board = _board_only(log)
    assert [entry.position for entry in view.timeline] == [r.position for r in board]
    assert view.position == (board[-1].position if board else 0)
    for round_ in view.rounds:
        expected = [r.position for r in board if isinstance(r.event, ExpertSpeech) and r.event.round == round_.round]
        assert [s.position for s in round_.speeches] == expected
        summaries = [r.position for r in board if isinstance(r.event, RoundSummary) and r.event.round == round_.round]
        assert [s.position for s in round_.summaries] == summaries
    interventions = [i.position for round_ in view.rounds for i in round_.interventions]
    assert sorted(interventions) == [r.position for r in board if isinstance(r.event, UserIntervention)]
    assert len({round_.round for round_ in view.rounds}) == len(view.rounds)
    markdown = board_markdown(view)
    for recorded in board:
        if isinstance(recorded.event, ExpertSpeech):
            assert recorded.event.content in markdown


@given(logs(), st.integers(min_value=0, max_value=200))
def test_replay_at_a_position_is_the_replay_of_the_log_up_to_it(log: list[RecordedEvent], at: int) -> None:
    prefix = [r for r in log if r.position <= at]
    assert fold("b1", log, at=at) == fold("b1", prefix)


@given(logs(), st.integers(min_value=0, max_value=30))
def test_replay_in_two_parts_equals_replay_in_one(log: list[RecordedEvent], cut: int) -> None:
    from projections.boards import apply

    view = fold("b1", log[:cut])
    for recorded in log[cut:]:
        apply(view, recorded)
    assert view == fold("b1", log)


def test_a_whole_meeting_reads_as_rounds_with_speeches_interventions_summary_and_conclusion() -> None:
    events: list[AnyEvent] = [
        BoardStarted(board_id="b1", topic="T", experts=[ExpertProfile(name="chair", is_moderator=True)], max_rounds=2),
        ExpertSpeech(board_id="b1", round=1, expert_name="a", content="A1"),
        UserIntervention(target_id="b1", content="hurry"),
        RoundSummary(board_id="b1", round=1, moderator_name="chair", content="S1"),
        BoardConcluded(board_id="b1", summary="done", total_rounds=1),
    ]
    log = [
        RecordedEvent(position=10 + i, stream="board-b1", version=i + 1, session_id="s1", event_id=str(i), schema=1,
                      recorded_at=datetime(2026, 1, 1, tzinfo=UTC), meta=EventMeta(), event=e)
        for i, e in enumerate(events)
    ]  # fmt: skip
    view: BoardView = fold("b1", log)
    assert (view.status, view.topic, view.session_id, view.position) == ("concluded", "T", "s1", 14)
    [round_] = view.rounds
    assert ([s.content for s in round_.speeches], [i.content for i in round_.interventions], [s.content for s in round_.summaries]) == (
        ["A1"], ["hurry"], ["S1"],
    )  # fmt: skip
    assert view.conclusion is not None and view.conclusion.summary == "done"
    markdown = board_markdown(view)
    assert markdown.index("A1") < markdown.index("hurry") < markdown.index("S1") < markdown.index("## Conclusion")
