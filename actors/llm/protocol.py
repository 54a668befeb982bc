"""The one small protocol every LLM provider speaks: a request in, a stream of deltas out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal, Protocol

import msgspec

Role = Literal["system", "user", "assistant", "tool"]
Purpose = Literal[
    "chat",
    "board_speech",
    "board_summary",
    "board_conclusion",
    "team_plan",
    "team_phase",
    "team_review",
    "team_synthesis",
]


class ToolCall(msgspec.Struct, frozen=True, kw_only=True):
    """A whole tool call the model made; `arguments` is the JSON text it produced."""

    call_id: str
    name: str
    arguments: str


class ToolSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A tool offered to the model; `parameters` is the JSON Schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, object]


class LLMMessage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One message of the conversation given to the model.

    An assistant message may carry the `tool_calls` it made; a `tool` message
    answers one of them (`tool_call_id`).
    """

    role: Role
    content: str
    tool_calls: list[ToolCall] = []
    tool_call_id: str | None = None


class LLMRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What to ask the model."""

    model: str
    messages: list[LLMMessage]
    system_prompt: str | None = None
    purpose: Purpose = "chat"
    """What the answer is for; `board_conclusion`, `team_plan` and `team_review` want JSON.

    A deterministic provider answers by it.
    """
    tools: list[ToolSpec] = []
    """Tools the model may call; none means a plain answer."""
    tool_choice: str | None = None
    """A tool the model must call (by name); none lets the model choose. Small local models need it."""
    max_tokens: int | None = None
    """The most tokens the answer may have (asked of the server; agentbus cuts a stream that goes past it)."""


class TextDelta(msgspec.Struct, frozen=True, kw_only=True, tag="text"):
    """A piece of the answer's text."""

    text: str


class ToolCallDelta(msgspec.Struct, frozen=True, kw_only=True, tag="tool_call"):
    """A piece of a tool call: `index` groups the parts of one call."""

    index: int
    call_id: str | None = None
    name: str | None = None
    arguments: str = ""


class Usage(msgspec.Struct, frozen=True, kw_only=True, tag="usage"):
    """Token counts, usually the last delta."""

    prompt_tokens: int
    completion_tokens: int


Delta = TextDelta | ToolCallDelta | Usage


class Provider(Protocol):
    """A source of model output. Failures raise `ProviderError`."""

    name: str

    def stream(self, request: LLMRequest) -> AsyncIterator[Delta]:
        """Stream the model's answer to `request`."""
        ...
