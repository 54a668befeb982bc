"""The board's decisions as pure functions: the order of steps, resuming, interventions, cancel, the answer."""

from __future__ import annotations

from actors.board.logic import (
    BoardState,
    ConcludeStep,
    Finished,
    SpeakStep,
    SummarizeStep,
    decide_cancel,
    decide_intervention,
    evolve,
    final_answer,
    next_step,
    step_done_by,
)
from schemas.events import (
    BoardConcluded,
    BoardFailed,
    BoardStarted,
    ExpertProfile,
    ExpertSpeech,
    RoundSummary,
    UserIntervention,
)

MODERATOR = ExpertProfile(name="chair", is_moderator=True)
EXPERTS = [MODERATOR, ExpertProfile(name="a"), ExpertProfile(name="b")]


def started(max_rounds: int = 2) -> BoardState:
    return evolve(
        BoardState(board_id="b1"), BoardStarted(board_id="b1", topic="T", experts=EXPERTS, max_rounds=max_rounds)
    )


def speech(round_: int, name: str) -> ExpertSpeech:
    return ExpertSpeech(board_id="b1", round=round_, expert_name=name, content=f"{name} in {round_}")


def summary(round_: int, consensus: bool = False) -> RoundSummary:
    return RoundSummary(
        board_id="b1", round=round_, moderator_name="chair", content=f"round {round_}", consensus=consensus
    )


def run(state: BoardState, *events: object) -> BoardState:
    for event in events:
        evolve(state, event)  # type: ignore[arg-type]
    return state


def test_each_round_every_non_moderator_speaks_in_turn_then_the_moderator_summarizes() -> None:
    state = started()
    steps = []
    while not isinstance(step := next_step(state), ConcludeStep):
        steps.append(step)
        match step:
            case SpeakStep(round=r, expert=expert):
                evolve(state, speech(r, expert.name))
            case SummarizeStep(round=r):
                evolve(state, summary(r))
    assert [(type(s).__name__, s.round, getattr(getattr(s, "expert", None), "name", None)) for s in steps] == [
        ("SpeakStep", 1, "a"), ("SpeakStep", 1, "b"), ("SummarizeStep", 1, None),
        ("SpeakStep", 2, "a"), ("SpeakStep", 2, "b"), ("SummarizeStep", 2, None),
    ]  # fmt: skip
    assert next_step(state) == ConcludeStep(total_rounds=2)


def test_a_board_rebuilt_mid_round_2_continues_with_the_next_speaker() -> None:
    state = run(started(3), speech(1, "a"), speech(1, "b"), summary(1), speech(2, "a"))
    assert next_step(state) == SpeakStep(round=2, expert=EXPERTS[2])


def test_consensus_in_a_summary_ends_the_meeting_early() -> None:
    state = run(started(5), speech(1, "a"), speech(1, "b"), summary(1, consensus=True))
    assert next_step(state) == ConcludeStep(total_rounds=1)


def test_a_late_or_repeated_outcome_is_not_the_next_step() -> None:
    state = run(started(), speech(1, "a"))
    assert step_done_by(state, speech(1, "b"))
    assert not step_done_by(state, speech(1, "a"))  # said already
    assert not step_done_by(state, summary(1))  # b has not spoken
    evolve(state, BoardFailed(board_id="b1", reason="x", cancelled=True))
    assert not step_done_by(state, speech(1, "b")) and next_step(state) == Finished()


def test_an_intervention_is_taken_once_per_key_and_only_while_running() -> None:
    state = started()
    [event] = decide_intervention(state, "think of costs", "k1")
    assert event == UserIntervention(target_id="b1", content="think of costs", idempotency_key="k1")
    evolve(state, event)
    assert decide_intervention(state, "think of costs", "k1") == []
    assert state.transcript[-1].kind == "intervention" and state.transcript[-1].round == 1
    assert decide_intervention(BoardState(board_id="b1"), "too early", "k2") == []


def test_cancel_ends_a_running_board_once() -> None:
    state = started()
    [event] = decide_cancel(state)
    assert isinstance(event, BoardFailed) and event.cancelled
    assert decide_cancel(evolve(state, event)) == []


def test_the_final_answer_has_every_section_and_the_round_count() -> None:
    text = final_answer(
        BoardConcluded(
            board_id="b1", summary="S", decision_advice="D", consensus_points=["c"], dissent_points=[], total_rounds=1
        )
    )
    assert text.split("\n\n") == [
        "## Summary", "S", "## Decision advice", "D", "## Consensus", "- c", "## Dissent", "- (none)", "_1 round of discussion_",
    ]  # fmt: skip
