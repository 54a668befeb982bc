"""An MCP server's listed tools as agentbus `Tool`s: named `<server>__<tool>`, with their policy and schema."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import structlog

from ..tools import Tool, ToolContext, ToolError
from .config import SEPARATOR
from .connection import McpConnection
from .results import bounded, result_text

if TYPE_CHECKING:
    from mcp.types import Tool as McpTool

logger = structlog.get_logger("agentbus.mcp")

MAX_DESCRIPTION = 2048
"""Bytes of a tool's description the model is shown: every description goes into every prompt of the turn."""
MAX_NAME = 64
"""The longest function name OpenAI-compatible servers take."""
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
"""MCP allows `.` (and more) in tool names; function names of OpenAI-compatible servers do not."""


EFFECT_KEY = "agentbus/effect_key"
"""The `_meta` key of a call's effect key: MCP has no idempotency convention of its own, and `_meta` keys
outside the spec's reserved prefixes are the implementation's to define."""
ATTEMPT = "agentbus/attempt"


def effect_meta(context: ToolContext) -> dict[str, Any] | None:
    """The `_meta` that tells the server which call this is, so it can carry a repeated one out once."""
    if not context.effect_key:
        return None
    return {EFFECT_KEY: context.effect_key, ATTEMPT: context.attempt}


def server_tools(connection: McpConnection, listed: list[McpTool]) -> list[Tool]:
    """The tools of `listed` that the server's policy offers, in the server's order.

    A name that does not fit a function name once prefixed (too long, or the
    same as another tool's after its unsafe characters became `_`) is left
    out and logged, never offered under a name that would call another tool.
    """
    offered: dict[str, Tool] = {}
    for tool in listed:
        policy = connection.config.policy(tool.name)
        if policy == "deny":
            continue
        name = f"{connection.name}{SEPARATOR}{_UNSAFE.sub('_', tool.name)}"
        if len(name) > MAX_NAME or name in offered:
            logger.warning("mcp_tool_not_offered", server=connection.name, tool=tool.name, name=name)
            continue
        offered[name] = _tool(connection, tool, name, needs_confirmation=policy == "confirm")
    return list(offered.values())


def _tool(connection: McpConnection, listed: McpTool, name: str, *, needs_confirmation: bool) -> Tool:
    original = listed.name
    limit = connection.config.max_result_bytes

    async def run(arguments: dict[str, Any], context: ToolContext) -> str:
        result = await connection.call(original, arguments, effect_meta(context))
        text = result_text(list(result.content), result.structured_content, limit)
        if result.is_error:
            raise ToolError(text or f"{original} failed (the MCP server {connection.name!r} gave no reason)")
        return text

    annotations = listed.annotations
    about = listed.description or (annotations.title if annotations and annotations.title else "") or original
    return Tool(
        name=name,
        description=f"{bounded(about, MAX_DESCRIPTION)} (tool {original!r} of the MCP server {connection.name!r})",
        args=None,
        parameters=dict(listed.input_schema),
        run=run,
        needs_confirmation=needs_confirmation,
        # A read-only tool changes nothing, so running it again is safe too (the spec reads idempotentHint
        # only for tools that are not read-only).
        idempotent=bool(annotations and (annotations.idempotent_hint or annotations.read_only_hint)),
    )
