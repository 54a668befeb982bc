"""The deterministic offline provider: the default when no LLM is configured.

It needs no network and always gives the same answer to the same conversation,
yet the answer is derived from the conversation (it quotes and counts it), so
tests and demos can tell that the right history reached the model.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from .offline_board import board_answer
from .offline_team import team_answer
from .offline_tools import offline_tool_move
from .protocol import Delta, LLMRequest, TextDelta, ToolCallDelta, Usage


def offline_answer(request: LLMRequest) -> str:
    """Compose the offline answer to the conversation in `request`."""
    if request.purpose.startswith("team_"):
        return team_answer(request)
    if request.purpose != "chat":
        return board_answer(request)
    users = [m.content for m in request.messages if m.role == "user"]
    if not users:
        return "Hello! I am the offline assistant. Say something and I will answer."
    last = users[-1].strip()
    words = len(last.split())
    parts = [
        f'You said: "{last}".',
        f"That is message {len(users)} of our conversation, {words} word{'s' if words != 1 else ''} long.",
    ]
    if len(users) > 1:
        parts.append(f'Before that you said: "{users[-2].strip()}".')
    parts.append("(offline assistant: no LLM is configured)")
    return " ".join(parts)


class OfflineProvider:
    """Streams `offline_answer` word by word, `delay` seconds apart."""

    name = "offline"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    async def stream(self, request: LLMRequest) -> AsyncIterator[Delta]:
        move = offline_tool_move(request) if request.purpose == "chat" and request.tools else None
        answer = move.text if move is not None else offline_answer(request)
        words = answer.split(" ")
        if request.max_tokens is not None:
            words = words[: request.max_tokens]  # as a server stops at max_tokens (a word a token here)
        for i, word in enumerate(words):
            if self.delay:
                await asyncio.sleep(self.delay)
            yield TextDelta(text=word if i == len(words) - 1 else word + " ")
        for index, call in enumerate(move.calls if move is not None else []):
            yield ToolCallDelta(index=index, call_id=call.call_id, name=call.name, arguments=call.arguments)
        prompt = sum(len(m.content.split()) for m in request.messages)
        yield Usage(prompt_tokens=prompt, completion_tokens=len(words))
