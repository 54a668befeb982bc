"""The moderator's JSON conclusion: strict, repaired, or a fallback, never an exception."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from actors.board.conclusion import parse_conclusion

GOOD = '{"summary": "S", "decision_advice": "D", "consensus_points": ["c1"], "dissent_points": ["d1", "d2"]}'


def parse(text: str):
    return parse_conclusion(text, board_id="b", total_rounds=2, summaries=["first summary", "last summary"])


def test_valid_json_is_taken_as_it_is() -> None:
    concluded = parse(GOOD)
    assert (concluded.summary, concluded.decision_advice, concluded.consensus_points, concluded.dissent_points) == (
        "S", "D", ["c1"], ["d1", "d2"],
    )  # fmt: skip
    assert (concluded.board_id, concluded.total_rounds) == ("b", 2)


def test_json_in_a_code_fence_with_prose_around_it_is_repaired() -> None:
    assert parse(f"Here is my conclusion:\n```json\n{GOOD}\n```\nThanks.").dissent_points == ["d1", "d2"]


def test_other_key_spellings_and_a_string_for_a_list_are_repaired() -> None:
    concluded = parse('{"Summary": "S", "recommendation": "go", "consensus": "- one\\n- two", "dissent": [3]}')
    assert (concluded.decision_advice, concluded.consensus_points, concluded.dissent_points) == (
        "go",
        ["one", "two"],
        ["3"],
    )


def test_prose_without_json_falls_back_to_the_last_round_summary() -> None:
    concluded = parse("I think we should go ahead.")
    assert concluded.summary == "last summary" and concluded.consensus_points == []


def test_json_without_a_summary_keeps_its_other_fields() -> None:
    concluded = parse('{"decision_advice": "D"}')
    assert (concluded.summary, concluded.decision_advice) == ("last summary", "D")


@given(st.text())
def test_any_text_gives_a_conclusion(text: str) -> None:
    concluded = parse(text)
    assert concluded.summary and concluded.total_rounds == 2
