"""Read `@board[:name1,name2,…] [rounds=N] <topic>` into the plan of a board meeting.

Pure: the same message and configuration always give the same plan, so a
session re-activated after a crash restarts exactly the board it started.
"""

from __future__ import annotations

import re

import msgspec

from schemas.events import ExpertProfile
from schemas.texts import ENGLISH, Texts

from ..config import Config, ExpertTemplate

MAX_ROUNDS_LIMIT = 20

_BOARD = re.compile(r"^\s*@board(?=$|[\s:])(?::(?P<names>\S*))?(?P<rest>.*)$", re.DOTALL)
_ROUNDS = re.compile(r"^\s*rounds=(?P<n>\S*)(?=\s|$)")


class BoardPlan(msgspec.Struct, frozen=True, kw_only=True):
    """A board to start: the topic, the experts (moderator first) and the number of rounds."""

    topic: str
    experts: list[ExpertProfile]
    max_rounds: int


class BoardRefused(msgspec.Struct, frozen=True, kw_only=True):
    """An `@board` message that cannot start a board; `message` says how to fix it."""

    code: str
    message: str


def is_board_message(content: str) -> bool:
    """Return whether `content` asks for a board (well-formed or not)."""
    return _BOARD.match(content) is not None


def plan_board(content: str, config: Config, texts: Texts = ENGLISH) -> BoardPlan | BoardRefused | None:
    """Plan the board `content` asks for (a refusal in `texts`' language); None if it is not an `@board` message."""
    match = _BOARD.match(content)
    if match is None:
        return None
    rest = match["rest"]
    max_rounds = config.board.max_rounds
    rounds = _ROUNDS.match(rest)
    if rounds is not None:
        text = rounds["n"]
        if not text.isdigit() or not 1 <= int(text) <= MAX_ROUNDS_LIMIT:
            return BoardRefused(
                code="invalid_rounds", message=texts.invalid_rounds.format(limit=MAX_ROUNDS_LIMIT, got=text)
            )
        max_rounds = int(text)
        rest = rest[rounds.end() :]
    topic = rest.strip()
    if not topic:
        example = texts.board_example
        return BoardRefused(code="board_needs_topic", message=texts.board_needs_topic.format(example=example))
    names = [name for name in (match["names"] or "").split(",") if name]
    members = _members(names, config, texts)
    if isinstance(members, BoardRefused):
        return members
    return BoardPlan(topic=topic, experts=members, max_rounds=max_rounds)


def _members(names: list[str], config: Config, texts: Texts) -> list[ExpertProfile] | BoardRefused:
    experts = config.experts
    unknown = [name for name in names if name not in experts]
    if unknown:
        known = ", ".join(sorted(experts)) or "none configured"
        message = texts.unknown_experts.format(unknown=", ".join(unknown), known=known)
        return BoardRefused(code="unknown_experts", message=message)
    chosen = list(dict.fromkeys(names or config.board.default_experts or list(experts)))
    moderators = [name for name in chosen if experts[name].is_moderator]
    if not moderators:
        # Named experts still need someone to summarize: the configured moderator joins them.
        default_moderator = next((name for name, t in experts.items() if t.is_moderator), None)
        moderators = [default_moderator] if default_moderator else []
    speakers = [name for name in chosen if not experts[name].is_moderator]
    if not speakers:
        return BoardRefused(code="no_experts", message=texts.no_experts)
    return [_profile(name, experts[name]) for name in [*moderators[:1], *speakers]]


def _profile(name: str, template: ExpertTemplate) -> ExpertProfile:
    return ExpertProfile(
        name=name,
        avatar=template.avatar,
        color=template.color,
        persona=template.persona,
        is_moderator=template.is_moderator,
    )
