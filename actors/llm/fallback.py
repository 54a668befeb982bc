"""The fallback chain: main → recovery tiers → emergency, around one model call.

Each tier is a provider and the model to ask it for. A tier that fails (a
`ProviderError`: refused, unreachable, broken stream) passes the call to the
next; when every tier failed, the emergency tier answers with a structured
error instead of raising, so the user always gets a reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
import structlog

from bus.tracing import SpanKind, child
from schemas.events import FallbackError

from ..errors import ProviderError
from .budget import estimate_tokens
from .protocol import Delta, LLMRequest, Provider, TextDelta, ToolCall, ToolCallDelta, Usage

logger = structlog.get_logger("agentbus.llm")

OnText = Callable[[str], Awaitable[None]]
"""Called with each piece of text as it streams (the turn publishes it as a token frame)."""


class Tier(msgspec.Struct, frozen=True, kw_only=True):
    """One link of the chain: `name` is recorded on the turn (`main`, `recovery`)."""

    name: str
    provider: Provider
    model: str


class ModelOutput(msgspec.Struct, frozen=True, kw_only=True):
    """A whole model answer, or `error` (then the other fields are empty) when no tier answered.

    `truncated`: the answer was cut at its token or time limit.
    """

    text: str = ""
    calls: list[ToolCall] = []
    tier: str = "emergency"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: bool = False
    error: FallbackError | None = None


class Collected(msgspec.Struct, frozen=True, kw_only=True):
    """One provider's streamed answer, joined."""

    text: str
    calls: list[ToolCall]
    usage: Usage
    truncated: bool


async def collect(
    provider: Provider, request: LLMRequest, on_text: OnText, *, timeout: float | None = None
) -> Collected:
    """Stream one answer, passing text on as it comes; tool-call parts are joined by their index.

    The stream is cut (and its request cancelled, by closing it) once it has
    produced `request.max_tokens` pieces or `timeout` seconds passed:
    what came so far is the answer, `truncated`. A stream cut by time before it
    produced anything is a `ProviderError`, so the next tier is tried. Within a
    trace, the call is a span with an event at its first piece of text.
    """
    with child("llm stream", kind=SpanKind.CLIENT) as span:
        if not span.is_recording():
            return await _collect(provider, request, on_text, timeout)
        span.set_attributes(
            {"gen_ai.system": provider.name, "gen_ai.request.model": request.model, "agentbus.purpose": request.purpose}
        )
        first = True

        async def marking_first(piece: str) -> None:
            nonlocal first
            if first:
                first = False
                span.add_event("first token")  # what a user waits for
            await on_text(piece)

        return await _collect(provider, request, marking_first, timeout)


async def _collect(provider: Provider, request: LLMRequest, on_text: OnText, timeout: float | None) -> Collected:
    text: list[str] = []
    parts: dict[int, list[str | None]] = {}
    usage: Usage | None = None
    produced = 0
    truncated = False
    stream = provider.stream(request)
    try:
        async with asyncio.timeout(timeout):
            async for delta in stream:
                match delta:
                    case TextDelta(text=piece) if piece:
                        text.append(piece)
                        await on_text(piece)
                        produced += 1
                    case ToolCallDelta(index=index, call_id=call_id, name=name, arguments=arguments):
                        part = parts.setdefault(index, [None, None, ""])
                        part[0] = part[0] or call_id
                        part[1] = part[1] or name
                        part[2] = (part[2] or "") + arguments
                        produced += 1
                    case Usage():
                        usage = delta
                if request.max_tokens is not None and produced >= request.max_tokens:
                    # A server that ignores max_tokens (or counts otherwise) is held to it here.
                    truncated = True
                    break
    except TimeoutError:
        if not text and not parts:
            raise ProviderError(provider.name, f"no answer within {timeout:.0f} s") from None
        truncated = True
    finally:
        await _close(stream)
    calls = [
        ToolCall(call_id=call_id or "", name=name or "", arguments=arguments or "")
        for call_id, name, arguments in (parts[index] for index in sorted(parts))
    ]
    if usage is None or truncated:
        # A cut stream carries no usage: estimate the prompt, and the pieces are a fair count of the answer.
        prompt = usage.prompt_tokens if usage else sum(estimate_tokens(m.content) for m in request.messages)
        usage = Usage(prompt_tokens=prompt, completion_tokens=produced)
    elif request.max_tokens is not None and usage.completion_tokens >= request.max_tokens:
        truncated = True  # the server stopped at the limit we asked for
    return Collected(text="".join(text), calls=calls, usage=usage, truncated=truncated)


async def _close(stream: AsyncIterator[Delta]) -> None:
    """Close a provider's stream: an HTTP provider then drops the connection, which cancels the generation."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


async def generate(
    tiers: list[Tier],
    request: LLMRequest,
    on_text: OnText,
    *,
    on_reset: Callable[[], Awaitable[None]] | None = None,
    timeout: float | None = None,
) -> ModelOutput:
    """Ask each tier in turn until one answers (each within `timeout` s); never raises a `ProviderError`.

    `on_reset` is called when a tier that already streamed text fails: what it
    streamed is not part of the answer, and the next tier starts over.
    """
    failures: list[str] = []
    for tier in tiers:
        streamed = False

        async def passing(text: str) -> None:
            nonlocal streamed
            streamed = True
            await on_text(text)

        try:
            answer = await collect(
                tier.provider, msgspec.structs.replace(request, model=tier.model), passing, timeout=timeout
            )
        except ProviderError as exc:
            logger.warning("llm_tier_failed", tier=tier.name, provider=tier.provider.name, error=str(exc))
            failures.append(f"{tier.name} ({tier.provider.name}): {exc.reason}")
            if streamed and on_reset is not None:
                await on_reset()
            continue
        return ModelOutput(
            text=answer.text,
            calls=answer.calls,
            tier=tier.name,
            prompt_tokens=answer.usage.prompt_tokens,
            completion_tokens=answer.usage.completion_tokens,
            truncated=answer.truncated,
        )
    return ModelOutput(
        error=FallbackError(code="llm_unavailable", message="no language model tier could answer", failures=failures)
    )
