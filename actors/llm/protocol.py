"""The one small protocol every LLM provider speaks: a request in, a stream of deltas out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal, Protocol

import msgspec

Role = Literal["system", "user", "assistant", "tool"]


class ChatMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One message of the conversation given to the model."""

    role: Role
    content: str


class LLMRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What to ask the model."""

    model: str
    messages: list[ChatMessage]
    system_prompt: str | None = None


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
