"""Read `@team[:lead,member,…] <task>` into the team it asks for.

Pure: the same message and configuration always give the same team, so a
session re-activated after a crash restarts exactly the team it started.
"""

from __future__ import annotations

import re

import msgspec

from schemas.events import TeamExpert
from schemas.experts import expert_id
from schemas.texts import ENGLISH, Texts

from ..config import Config

_TEAM = re.compile(r"^\s*@team(?=$|[\s:])(?::(?P<names>\S*))?(?P<rest>.*)$", re.DOTALL)


class TeamSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A team to form: the task, and its experts with the lead first."""

    task: str
    experts: list[TeamExpert]


class TeamRefused(msgspec.Struct, frozen=True, kw_only=True):
    """An `@team` message that cannot form a team; `message` says how to fix it."""

    code: str
    message: str


def is_team_message(content: str) -> bool:
    """Return whether `content` asks for a team (well-formed or not)."""
    return _TEAM.match(content) is not None


def team_spec(content: str, config: Config, team_id: str, texts: Texts = ENGLISH) -> TeamSpec | TeamRefused | None:
    """The team `content` asks for (its experts' ids scoped to `team_id`, a refusal in `texts`' language).

    None if it is not an `@team` message.
    """
    match = _TEAM.match(content)
    if match is None:
        return None
    task = match["rest"].strip()
    if not task:
        return TeamRefused(code="team_needs_task", message=texts.team_needs_task.format(example=texts.team_example))
    names = list(dict.fromkeys(name for name in (match["names"] or "").split(",") if name))
    experts = config.experts
    unknown = [name for name in names if name not in experts]
    if unknown:
        known = ", ".join(sorted(experts)) or "none configured"
        message = texts.unknown_experts.format(unknown=", ".join(unknown), known=known)
        return TeamRefused(code="unknown_experts", message=message)
    if not names:
        names = config.team.templates.get(config.team.default_template, [])
    if not names:
        return TeamRefused(
            code="no_team_template",
            message=f"no experts named and no template {config.team.default_template!r} configured ([team.templates])",
        )
    return TeamSpec(
        task=task,
        experts=[
            TeamExpert(
                expert_id=expert_id(team_id, name),
                name=name,
                avatar=experts[name].avatar,
                color=experts[name].color,
                persona=experts[name].persona,
                role="lead" if index == 0 else "member",
            )
            for index, name in enumerate(names)
        ],
    )
