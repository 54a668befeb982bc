"""Reading `@board[:names] [rounds=N] <topic>`: members, rounds, and the refusals that start nothing."""

from __future__ import annotations

import pytest

from actors.board.plan import BoardPlan, BoardRefused, plan_board
from actors.config import BoardConfig, Config, ExpertTemplate, load_config

CONFIG = Config(
    experts={
        "chair": ExpertTemplate(is_moderator=True, avatar="C"),
        "a": ExpertTemplate(persona="pa"),
        "b": ExpertTemplate(),
        "c": ExpertTemplate(),
    },
    board=BoardConfig(max_rounds=4, default_experts=["chair", "a", "b"]),
)


def test_a_plain_board_has_the_default_members_moderator_first_and_the_configured_rounds() -> None:
    plan = plan_board("@board  Should we?  ", CONFIG)
    assert isinstance(plan, BoardPlan)
    assert (plan.topic, plan.max_rounds) == ("Should we?", 4)
    assert [(e.name, e.is_moderator) for e in plan.experts] == [("chair", True), ("a", False), ("b", False)]
    assert plan.experts[0].avatar == "C" and plan.experts[1].persona == "pa"


def test_named_experts_and_rounds_are_taken_and_the_moderator_joins_them() -> None:
    plan = plan_board("@board:c,a rounds=2 Rust or Go?", CONFIG)
    assert isinstance(plan, BoardPlan)
    assert ([e.name for e in plan.experts], plan.max_rounds, plan.topic) == (["chair", "c", "a"], 2, "Rust or Go?")


def test_without_configured_rounds_a_board_has_five() -> None:
    plan = plan_board("@board topic", Config(experts=CONFIG.experts))
    assert isinstance(plan, BoardPlan) and plan.max_rounds == 5


@pytest.mark.parametrize(
    ("content", "code", "text"),
    [
        ("@board", "board_needs_topic", "for example: @board "),
        ("@board:a,b rounds=3", "board_needs_topic", "needs a topic"),
        ("@board:a,x,y topic", "unknown_experts", "unknown experts: x, y"),
        ("@board rounds=0 topic", "invalid_rounds", "from 1 to 20"),
        ("@board rounds=many topic", "invalid_rounds", "'many'"),
        ("@board:chair topic", "no_experts", "at least one expert"),
    ],
)
def test_a_bad_board_message_is_refused_with_a_reason(content: str, code: str, text: str) -> None:
    refused = plan_board(content, CONFIG)
    assert isinstance(refused, BoardRefused) and refused.code == code and text in refused.message


@pytest.mark.parametrize("content", ["hello", "@boardroom talk", "email me @board x", "@team do it"])
def test_other_messages_are_not_boards(content: str) -> None:
    assert plan_board(content, CONFIG) is None


def test_the_shipped_default_board_is_a_moderator_and_at_least_three_contrasting_experts() -> None:
    plan = plan_board("@board topic", load_config())
    assert isinstance(plan, BoardPlan)
    moderator, *speakers = plan.experts
    assert moderator.is_moderator and len(speakers) >= 3
    assert len({e.persona for e in speakers}) == len(speakers) and all(e.avatar and e.color for e in plan.experts)
