"""LLM providers behind one streaming protocol."""

from .offline import OfflineProvider, offline_answer
from .protocol import ChatMessage, Delta, LLMRequest, Provider, TextDelta, ToolCallDelta, Usage

__all__ = [
    "ChatMessage",
    "Delta",
    "LLMRequest",
    "OfflineProvider",
    "Provider",
    "TextDelta",
    "ToolCallDelta",
    "Usage",
    "offline_answer",
]
