"""The OpenAI-compatible provider and the fallback chain, against a local server speaking that wire format."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from actors.errors import ProviderError
from actors.llm import LLMMessage, LLMRequest, OfflineProvider, TextDelta, ToolCall, Usage
from actors.llm.fallback import Tier, collect, generate
from actors.llm.openai import OpenAIProvider
from actors.tools import BUILTIN_TOOLS
from tests.openai_server import OpenAIServer


@pytest.fixture
async def server() -> AsyncIterator[OpenAIServer]:
    async with OpenAIServer() as running:
        yield running


@pytest.fixture
async def provider(server: OpenAIServer) -> AsyncIterator[OpenAIProvider]:
    provider = OpenAIProvider(server.base_url, api_key="sk-test", timeout=5)
    yield provider
    await provider.aclose()


def ask(content: str, model: str = "scripted", with_tools: bool = True) -> LLMRequest:
    tools = [BUILTIN_TOOLS.get("calculator").spec()] if with_tools else []  # type: ignore[union-attr]
    return LLMRequest(
        model=model, messages=[LLMMessage(role="user", content=content)], system_prompt="Be brief.", tools=tools
    )


async def ignore(_: str) -> None:
    return None


async def test_text_streams_in_deltas_and_usage_comes_last(provider: OpenAIProvider) -> None:
    deltas = [delta async for delta in provider.stream(ask("hello"))]
    texts = [d.text for d in deltas if isinstance(d, TextDelta)]
    assert len(texts) > 2 and "".join(texts) == "Hello from the test model."
    assert deltas[-1] == Usage(prompt_tokens=11, completion_tokens=7)


async def test_a_tool_call_split_over_chunks_is_joined(provider: OpenAIProvider, server: OpenAIServer) -> None:
    answer = await collect(provider, ask("what is 17*23?"), ignore)
    text, calls = answer.text, answer.calls
    assert text == "Let me compute."
    assert calls == [ToolCall(call_id="call_test_1", name="calculator", arguments=json.dumps({"expression": "17*23"}))]
    sent = server.requests[-1]
    assert sent["stream"] is True and sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["tools"][0]["function"]["name"] == "calculator"


async def test_tool_results_go_back_with_their_call_id(provider: OpenAIProvider, server: OpenAIServer) -> None:
    call = ToolCall(call_id="call_test_1", name="calculator", arguments='{"expression": "17*23"}')
    messages = [
        LLMMessage(role="user", content="what is 17*23?"),
        LLMMessage(role="assistant", content="", tool_calls=[call]),
        LLMMessage(role="tool", content="17*23 = 391", tool_call_id="call_test_1"),
    ]
    answer = await collect(provider, LLMRequest(model="scripted", messages=messages), ignore)
    text, calls = answer.text, answer.calls
    assert text == "The result is 391." and calls == []
    assert server.requests[-1]["messages"][1]["tool_calls"][0]["id"] == "call_test_1"
    assert server.requests[-1]["messages"][2] == {
        "role": "tool",
        "content": "17*23 = 391",
        "tool_call_id": "call_test_1",
    }


@pytest.mark.parametrize("model", ["broken", "truncated"])
async def test_a_stream_that_breaks_midway_is_a_provider_error(provider: OpenAIProvider, model: str) -> None:
    seen: list[str] = []
    with pytest.raises(ProviderError):
        async for delta in provider.stream(ask("hi", model=model)):
            if isinstance(delta, TextDelta):
                seen.append(delta.text)
    assert seen  # some text arrived before the break


@pytest.mark.parametrize(("model", "status"), [("rate-limited", "429"), ("error", "500")])
async def test_an_error_status_is_a_provider_error_naming_it(provider: OpenAIProvider, model: str, status: str) -> None:
    with pytest.raises(ProviderError, match=f"HTTP {status}"):
        await collect(provider, ask("hi", model=model), ignore)


async def test_an_unreachable_server_is_a_provider_error() -> None:
    provider = OpenAIProvider("http://127.0.0.1:9/v1", timeout=2)
    try:
        with pytest.raises(ProviderError):
            await collect(provider, ask("hi"), ignore)
    finally:
        await provider.aclose()


async def test_the_chain_falls_through_to_the_recovery_tier(provider: OpenAIProvider) -> None:
    chain = [
        Tier(name="main", provider=provider, model="error"),
        Tier(name="recovery", provider=provider, model="scripted"),
    ]
    output = await generate(chain, ask("hello"), ignore)
    assert output.tier == "recovery" and output.text == "Hello from the test model." and output.error is None


async def test_when_every_tier_fails_the_emergency_tier_answers_with_a_structured_error(
    provider: OpenAIProvider,
) -> None:
    chain = [
        Tier(name="main", provider=provider, model="rate-limited"),
        Tier(name="recovery", provider=provider, model="broken"),
    ]
    output = await generate(chain, ask("hello"), ignore)
    assert output.tier == "emergency" and output.error is not None
    assert output.error.code == "llm_unavailable"
    assert [line.split(" ")[0] for line in output.error.failures] == ["main", "recovery"]
    assert "429" in output.error.failures[0]


async def test_the_offline_provider_is_a_tier_like_any_other() -> None:
    chain = [Tier(name="main", provider=OfflineProvider(), model="offline")]
    output = await generate(chain, ask("what is 17*23?"), ignore)
    assert output.calls[0].name == "calculator" and output.tier == "main"
