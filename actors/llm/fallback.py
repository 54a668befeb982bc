"""The fallback chain: main → recovery tiers → emergency, around one model call.

Each tier is a provider and the model to ask it for. A tier that fails (a
`ProviderError`: refused, unreachable, broken stream) passes the call to the
next; when every tier failed, the emergency tier answers with a structured
error instead of raising, so the user always gets a reply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
import structlog

from schemas.events import FallbackError

from ..errors import ProviderError
from .protocol import LLMRequest, Provider, TextDelta, ToolCall, ToolCallDelta, Usage

logger = structlog.get_logger("agentbus.llm")

OnText = Callable[[str], Awaitable[None]]
"""Called with each piece of text as it streams (the turn publishes it as a token frame)."""


class Tier(msgspec.Struct, frozen=True, kw_only=True):
    """One link of the chain: `name` is recorded on the turn (`main`, `recovery`)."""

    name: str
    provider: Provider
    model: str


class ModelOutput(msgspec.Struct, frozen=True, kw_only=True):
    """A whole model answer, or `error` (then the other fields are empty) when no tier answered."""

    text: str = ""
    calls: list[ToolCall] = []
    tier: str = "emergency"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: FallbackError | None = None


async def collect(provider: Provider, request: LLMRequest, on_text: OnText) -> tuple[str, list[ToolCall], Usage]:
    """Stream one answer, passing text on as it comes; tool-call parts are joined by their index."""
    text: list[str] = []
    parts: dict[int, list[str | None]] = {}
    usage = Usage(prompt_tokens=0, completion_tokens=0)
    async for delta in provider.stream(request):
        match delta:
            case TextDelta(text=piece) if piece:
                text.append(piece)
                await on_text(piece)
            case ToolCallDelta(index=index, call_id=call_id, name=name, arguments=arguments):
                part = parts.setdefault(index, [None, None, ""])
                part[0] = part[0] or call_id
                part[1] = part[1] or name
                part[2] = (part[2] or "") + arguments
            case Usage():
                usage = delta
    calls = [
        ToolCall(call_id=call_id or "", name=name or "", arguments=arguments or "")
        for call_id, name, arguments in (parts[index] for index in sorted(parts))
    ]
    return "".join(text), calls, usage


async def generate(tiers: list[Tier], request: LLMRequest, on_text: OnText) -> ModelOutput:
    """Ask each tier in turn until one answers; never raises a `ProviderError`."""
    failures: list[str] = []
    for tier in tiers:
        try:
            text, calls, usage = await collect(
                tier.provider, msgspec.structs.replace(request, model=tier.model), on_text
            )
        except ProviderError as exc:
            logger.warning("llm_tier_failed", tier=tier.name, provider=tier.provider.name, error=str(exc))
            failures.append(f"{tier.name} ({tier.provider.name}): {exc.reason}")
            continue
        return ModelOutput(
            text=text,
            calls=calls,
            tier=tier.name,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
        )
    return ModelOutput(
        error=FallbackError(code="llm_unavailable", message="no language model tier could answer", failures=failures)
    )
