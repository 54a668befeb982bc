"""How history shows a user message: the seed's clean content, with its routing prefix's choices kept apart."""

from __future__ import annotations

from schemas.events import Routing

from ..board.plan import BoardPlan, plan_board
from ..config import Config
from ..team.routing import TeamSpec, team_spec
from ..turn.skills import parse_skill


def shown_as(content: str, config: Config) -> tuple[str | None, Routing | None]:
    """The text history shows for `content` and its routing, or (None, None) when it is shown as sent.

    `@skill:x text` shows as `text`; `@board:a,b rounds=N topic` as `@board topic`
    and `@team:a,b task` as `@team task` (the seed's bubbles), with the skill,
    experts and rounds in the routing.
    """
    plan = plan_board(content, config)
    if isinstance(plan, BoardPlan):
        experts = [e.name for e in plan.experts]
        return f"@board {plan.topic}", Routing(mode="board", experts=experts, rounds=plan.max_rounds)
    team = team_spec(content, config, "shown")
    if isinstance(team, TeamSpec):
        return f"@team {team.task}", Routing(mode="team", experts=[e.name for e in team.experts])
    skill = parse_skill(content)
    if skill is not None:
        return skill.content, Routing(mode="skill", skill=skill.name)
    return None, None
