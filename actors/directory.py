"""The agents directory a worker serves on `<prefix>.agents.list`: what a client's agent picker shows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from schemas.agents import AgentInfo, AgentList, ListAgents

from .config import Config


def agents_of(config: Config) -> AgentList:
    """The configured agents, in the configuration's order."""
    return AgentList(
        agents=[
            AgentInfo(
                name=name,
                description=agent.description,
                execution_mode=agent.execution_mode,
                tools=[] if agent.execution_mode == "direct" else list(agent.tools),
            )
            for name, agent in config.agents.items()
        ]
    )


def answer_agents(config: Config) -> Callable[[ListAgents], Awaitable[AgentList]]:
    """The request handler of `subjects.agents_list`: the answer never changes while the worker runs."""
    listed = agents_of(config)

    async def answer(_: ListAgents) -> AgentList:
        return listed

    return answer
