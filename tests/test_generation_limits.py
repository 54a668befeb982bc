"""Generation is always bounded: a model that never stops talking is cut at its token or time limit.

Against a real HTTP server that streams for ever and ignores `max_tokens`: the
stream is cut, the server sees its request cancelled, and the answer so far is
kept and marked truncated.
"""

from __future__ import annotations

import asyncio

import pytest

from actors.errors import ProviderError
from actors.llm import LLMMessage, LLMRequest
from actors.llm.fallback import Tier, collect, generate
from actors.llm.openai import OpenAIProvider
from tests.openai_server import OpenAIServer


def ask(model: str, max_tokens: int | None = None) -> LLMRequest:
    return LLMRequest(model=model, messages=[LLMMessage(role="user", content="talk")], max_tokens=max_tokens)


async def ignore(text: str) -> None:
    pass


async def test_a_stream_past_max_tokens_is_cut_and_its_request_cancelled() -> None:
    async with OpenAIServer() as server:
        provider = OpenAIProvider(server.base_url)
        try:
            answer = await collect(provider, ask("endless", max_tokens=20), ignore)
            async with asyncio.timeout(10):
                await server.abandoned.wait()
        finally:
            await provider.aclose()
    assert answer.truncated and answer.text == "more " * 20
    assert answer.usage.completion_tokens == 20
    assert server.requests[0]["max_tokens"] == 20  # asked of the server too


async def test_a_stream_past_its_time_limit_keeps_what_it_said_and_is_marked_truncated() -> None:
    async with OpenAIServer() as server:
        provider = OpenAIProvider(server.base_url)
        try:
            answer = await collect(provider, ask("endless"), ignore, timeout=0.5)
            async with asyncio.timeout(10):
                await server.abandoned.wait()
        finally:
            await provider.aclose()
    assert answer.truncated and answer.text.startswith("more more")


class Silent:
    """A provider that accepts the request and never says anything."""

    name = "silent"

    async def stream(self, request: LLMRequest):  # type: ignore[no-untyped-def]
        await asyncio.sleep(3600)
        yield  # pragma: no cover


async def test_a_model_that_says_nothing_within_its_time_limit_fails_over_to_the_next_tier() -> None:
    with pytest.raises(ProviderError, match="no answer within"):
        await collect(Silent(), ask("x"), ignore, timeout=0.2)
    async with OpenAIServer() as server:
        provider = OpenAIProvider(server.base_url)
        try:
            tiers = [
                Tier(name="main", provider=Silent(), model="x"),
                Tier(name="recovery", provider=provider, model="m"),
            ]
            output = await generate(tiers, ask("x"), ignore, timeout=0.5)
        finally:
            await provider.aclose()
    assert output.tier == "recovery" and output.text == "Hello from the test model." and not output.truncated
