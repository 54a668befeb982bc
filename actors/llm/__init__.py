"""LLM providers behind one streaming protocol."""

from .offline import OfflineProvider, offline_answer
from .protocol import ChatMessage, Delta, LLMRequest, Provider, TextDelta, ToolCall, ToolCallDelta, ToolSpec, Usage

__all__ = [
    "ChatMessage",
    "Delta",
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
