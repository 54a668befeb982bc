"""LLM providers behind one streaming protocol."""

from .offline import OfflineProvider, offline_answer
from .protocol import Delta, LLMMessage, LLMRequest, Provider, TextDelta, ToolCall, ToolCallDelta, ToolSpec, Usage

__all__ = [
    "Delta",
    "LLMMessage",
    "LLMRequest",
    "OfflineProvider",
    "Provider",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
    "ToolSpec",
    "Usage",
    "offline_answer",
]
