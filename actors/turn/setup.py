"""What a turn runs with: the agent's configuration, refined by an `@skill:` prefix and the message's overrides."""

from __future__ import annotations

import functools
import re

import msgspec

from schemas import ExecutionMode

from ..config import Config
from .skills import parse_skill


class TurnSetup(msgspec.Struct, frozen=True, kw_only=True):
    """The resolved prompt, tools, model and mode of one turn.

    `model` None means the endpoint's own model; `content` is the user's
    message without its `@skill:` prefix (what the model sees).
    """

    agent_name: str
    system_prompt: str
    tools: list[str]
    model: str | None
    execution_mode: ExecutionMode
    llm: str
    fallback: list[str]
    max_steps: int
    content: str
    skill: str | None = None
    tool_choice: str | None = None
    """The tool the first model call must call, if one is forced."""
    mcp: list[str] = []
    """The MCP servers whose tools the turn is offered too (listed when it runs: they start lazily)."""


class SetupRefused(msgspec.Struct, frozen=True, kw_only=True):
    """The turn cannot run as asked (an unknown skill or agent); `code` is stable."""

    code: str
    message: str


def resolve_setup(
    config: Config,
    agent_name: str,
    content: str,
    *,
    model: str | None = None,
    execution_mode: ExecutionMode | None = None,
) -> TurnSetup | SetupRefused:
    """Combine the agent, the skill a message names and the message's overrides (those win)."""
    agent = config.agents.get(agent_name)
    if agent is None:
        return SetupRefused(code="unknown_agent", message=f"agent {agent_name!r} is not configured")
    requested = parse_skill(content)
    skill = None
    if requested is not None:
        skill = config.skills.get(requested.name)
        if skill is None:
            known = ", ".join(sorted(config.skills)) or "none"
            return SetupRefused(code="unknown_skill", message=f"unknown skill {requested.name!r} (known: {known})")
        content = requested.content
    greeted = skill is None and execution_mode is None and _is_greeting(config.session.greeting, content)
    mode = (
        execution_mode or (skill.execution_mode if skill else None) or ("direct" if greeted else agent.execution_mode)
    )
    if mode == "plan_exec" and not config.plan_exec.enabled:
        mode = "react"  # as the seed did: plan_exec switched off runs the ReAct loop
    tools = list(skill.tools if skill else agent.tools)
    servers = list(skill.mcp if skill else agent.mcp)
    if mode == "direct":
        tools, servers = [], []
    elif mode == "plan_exec" and "advance_phase" not in tools:
        tools.append("advance_phase")
    return TurnSetup(
        agent_name=agent_name,
        system_prompt=skill.system_prompt if skill else agent.system_prompt,
        tools=tools,
        model=model or (skill.model if skill else None) or agent.model,
        execution_mode=mode,
        llm=agent.llm,
        fallback=list(agent.fallback),
        max_steps=agent.max_steps,
        content=content,
        skill=requested.name if requested else None,
        tool_choice=((skill.tool_choice if skill else None) or agent.tool_choice) if tools else None,
        mcp=servers,
    )


@functools.lru_cache(maxsize=8)
def _greeting(pattern: str) -> re.Pattern[str] | None:
    return re.compile(pattern) if pattern else None


def _is_greeting(pattern: str, content: str) -> bool:
    """Whether `content` is a greeting, answered with one model call (the seed's greeting shortcut)."""
    greeting = _greeting(pattern)
    return greeting is not None and greeting.match(content) is not None
