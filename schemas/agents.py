"""The configured agents, as a client picks one: asked over `<prefix>.agents.list`, answered by any worker."""

from __future__ import annotations

import msgspec

from ._base import Message, Reply
from .codec import Decoder
from .commands import ExecutionMode
from .replies import ErrorReply


class ListAgents(Message, frozen=True, kw_only=True):
    """Ask for the agents a session can be bound to."""


class AgentInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One agent: its name (a session's `agent_name`), what it is for, how it runs, the tools it has."""

    name: str
    description: str = ""
    execution_mode: ExecutionMode
    tools: list[str] = []


class AgentList(Reply, frozen=True, kw_only=True):
    """Every configured agent, in the configuration's order."""

    agents: list[AgentInfo]


list_agents: Decoder[ListAgents] = Decoder(ListAgents, "agents request")
agent_lists: Decoder[AgentList | ErrorReply] = Decoder(AgentList | ErrorReply, "agents reply")
