"""The project's OpenAI provider against a real model: llama-cpp-python's server on SmolLM2-135M-Instruct.

The server is built once per machine (see `cli.local_llm`) and shared by the
session (`local_llm_url`); the tests that kill or freeze a server start one of
their own. A 135M model says little of use, so the tests check the wire
contract (deltas, model name, tool-call shape, failures), not the wording.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from actors.board.conclusion import parse_conclusion
from actors.board.prompts import llm_request
from actors.errors import ProviderError
from actors.llm import LLMMessage, LLMRequest, TextDelta, ToolCallDelta, ToolSpec, Usage
from actors.llm.fallback import collect
from actors.llm.openai import OpenAIProvider, request_body
from cli.local_llm import MODEL_ALIAS, LocalLLM
from schemas.events import ExpertProfile
from schemas.experts import Conclude, TranscriptEntry

ANSWER_TIMEOUT = 120.0
"""Seconds any one answer of the real model may take (a 135M model on one thread, on a busy machine)."""

# The server turns the schema into a grammar; with a bare {"type": "string"} a 135M model still produced
# arguments that were not JSON (a raw newline in the string) in 2 of 10 tries, with this pattern in none of 20.
CALCULATOR = ToolSpec(
    name="calculator",
    description="Evaluate an arithmetic expression.",
    parameters={
        "type": "object",
        "properties": {"expression": {"type": "string", "pattern": "^[0-9+*/() -]{1,40}$"}},
        "required": ["expression"],
    },
)
NAMED_CALCULATOR = {"type": "function", "function": {"name": "calculator"}}
LONG_ANSWER = "Count from 1 to 500, one number per line, and write nothing else."


def ask(
    content: str, *, model: str = MODEL_ALIAS, tools: list[ToolSpec] | None = None, max_tokens: int = 48
) -> LLMRequest:
    return LLMRequest(
        model=model,
        messages=[LLMMessage(role="user", content=content)],
        system_prompt="You are a helpful assistant. Use the tools when they help. Answer in one short sentence.",
        tools=tools or [],
        max_tokens=max_tokens,
    )


@pytest.fixture
async def provider(local_llm_url: str) -> AsyncIterator[OpenAIProvider]:
    provider = OpenAIProvider(local_llm_url, timeout=ANSWER_TIMEOUT, name="smollm2")
    yield provider
    await provider.aclose()


async def deltas_of(provider: OpenAIProvider, request: LLMRequest) -> list[Any]:
    async with asyncio.timeout(ANSWER_TIMEOUT):
        return [delta async for delta in provider.stream(request)]


async def raw_chunks(base_url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """POST `body` to the server as is and return the JSON of each `data:` line of its stream."""
    chunks = []
    async with asyncio.timeout(ANSWER_TIMEOUT), httpx.AsyncClient(timeout=ANSWER_TIMEOUT) as client:
        async with client.stream("POST", base_url + "/chat/completions", json=body) as response:
            assert response.status_code == 200, await response.aread()
            async for line in response.aiter_lines():
                if line.startswith("data:") and line[5:].strip() != "[DONE]":
                    chunks.append(json.loads(line[5:]))
    return chunks


async def test_a_chat_answer_streams_as_several_text_deltas_and_ends_cleanly(provider: OpenAIProvider) -> None:
    deltas = await deltas_of(provider, ask("What colour is the sky on a clear day?"))
    texts = [d.text for d in deltas if isinstance(d, TextDelta)]
    assert len(texts) > 1 and "".join(texts).strip()
    assert not [d for d in deltas if isinstance(d, ToolCallDelta)]


async def ignore(text: str) -> None:
    pass


async def test_the_usage_of_a_streamed_answer_is_counted_though_the_server_reports_none(
    provider: OpenAIProvider,
) -> None:
    """llama-cpp-python ignores `stream_options.include_usage`: agentbus counts the pieces and estimates the prompt."""
    deltas = await deltas_of(provider, ask("Say hello."))
    assert not [d for d in deltas if isinstance(d, Usage)]
    answer = await collect(provider, ask("Say hello."), ignore)
    assert answer.usage.completion_tokens > 0 and answer.usage.prompt_tokens > 0


async def test_max_tokens_bounds_the_answer_the_server_streams(provider: OpenAIProvider) -> None:
    """llama-cpp-python streams one token per chunk (fewer when a character spans tokens)."""
    deltas = await deltas_of(provider, ask(LONG_ANSWER, max_tokens=12))
    assert 0 < len([d for d in deltas if isinstance(d, TextDelta)]) <= 12


async def test_two_requests_at_once_are_both_answered(provider: OpenAIProvider) -> None:
    """`--interrupt_requests false`: by default the second request cuts the first short, and the provider,
    reading up to the [DONE] the server still sends, took that for a whole (here empty) answer."""
    request = ask(LONG_ANSWER, max_tokens=24)
    answers = await asyncio.gather(deltas_of(provider, request), deltas_of(provider, request))
    assert all([d for d in deltas if isinstance(d, TextDelta)] for deltas in answers)


async def test_the_server_reports_its_alias_and_answers_in_the_name_of_the_requested_model(local_llm_url: str) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        listed = (await client.get(local_llm_url + "/models")).json()
    assert [model["id"] for model in listed["data"]] == [MODEL_ALIAS]
    chunks = await raw_chunks(local_llm_url, request_body(ask("Say hello.")))
    assert chunks and {chunk["model"] for chunk in chunks} == {MODEL_ALIAS}


async def test_a_request_naming_another_model_is_still_answered_by_the_one_loaded(provider: OpenAIProvider) -> None:
    """llama-cpp-python maps an unknown model name to its only model: a misnamed model is no error."""
    deltas = await deltas_of(provider, ask("Say hello.", model="no-such-model"))
    assert [d for d in deltas if isinstance(d, TextDelta)]


async def test_a_tool_named_by_tool_choice_comes_back_as_one_call_with_json_arguments(local_llm_url: str) -> None:
    """The provider's own body plus `tool_choice` (which it cannot send yet) gets a proper call."""
    body = request_body(ask("What is 17*23?", tools=[CALCULATOR])) | {"tool_choice": NAMED_CALCULATOR}
    chunks = await raw_chunks(local_llm_url, body)
    parts = [
        part for chunk in chunks for choice in chunk["choices"] for part in choice["delta"].get("tool_calls") or []
    ]
    assert {part["index"] for part in parts} == {0}
    assert [part["function"]["name"] for part in parts if part["function"].get("name")][:1] == ["calculator"]
    arguments = json.loads("".join(part["function"].get("arguments") or "" for part in parts))
    assert isinstance(arguments.get("expression"), str)


async def test_the_provider_gets_a_tool_call_from_the_real_model_when_it_names_the_tool(
    provider: OpenAIProvider,
) -> None:
    """`tool_choice` names the function: chatml-function-calling then returns a proper call, streamed."""
    request = ask("Call the calculator tool with the expression 17*23.", tools=[CALCULATOR])
    deltas = await deltas_of(provider, msgspec.structs.replace(request, tool_choice="calculator"))
    calls = [d for d in deltas if isinstance(d, ToolCallDelta)]
    assert [d.name for d in calls if d.name][:1] == ["calculator"]
    assert isinstance(json.loads("".join(d.arguments for d in calls)).get("expression"), str)


@pytest.fixture
def own_server(local_llm_url: str, tmp_path: Path) -> Iterator[LocalLLM]:
    """A server of the test's own (built already by `local_llm_url`), to kill or freeze."""
    llm = LocalLLM(log_path=tmp_path / "server.log")
    llm.start()
    yield llm
    if llm.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(llm.pid, signal.SIGCONT)
    llm.stop()


async def first_text_then(provider: OpenAIProvider, request: LLMRequest, act: Any) -> list[str]:
    """Stream `request`; after the third text delta call `act()` once; return the texts seen before the error."""
    seen: list[str] = []
    async with asyncio.timeout(ANSWER_TIMEOUT):
        async for delta in provider.stream(request):
            if isinstance(delta, TextDelta):
                seen.append(delta.text)
                if len(seen) == 3:
                    act()
    return seen


async def test_a_server_killed_mid_stream_is_a_provider_error_not_a_hang(own_server: LocalLLM) -> None:
    provider = OpenAIProvider(own_server.base_url, timeout=ANSWER_TIMEOUT)
    try:
        with pytest.raises(ProviderError):
            await first_text_then(provider, ask(LONG_ANSWER, max_tokens=400), own_server.kill)
    finally:
        await provider.aclose()


async def test_a_server_frozen_mid_stream_is_a_provider_error_after_the_read_timeout(own_server: LocalLLM) -> None:
    assert own_server.pid is not None
    pid = own_server.pid
    provider = OpenAIProvider(own_server.base_url, timeout=3.0)
    try:
        with pytest.raises(ProviderError, match="ReadTimeout"):
            await first_text_then(provider, ask(LONG_ANSWER, max_tokens=400), lambda: os.kill(pid, signal.SIGSTOP))
    finally:
        await provider.aclose()


async def test_the_real_models_conclusion_is_parsed_or_repaired_into_a_conclusion(provider: OpenAIProvider) -> None:
    """Whatever a 135M model makes of "reply with one JSON object", the board gets a conclusion out of it,
    also when the answer comes wrapped in prose and a code fence (the repair path, on real output)."""
    moderator = ExpertProfile(name="moderator", persona="Chairs the meeting.", is_moderator=True)
    transcript = [
        TranscriptEntry(kind="speech", round=1, speaker="pragmatist", content="Start with a monolith; split later."),
        TranscriptEntry(kind="summary", round=1, speaker="moderator", content="They agree to start simple."),
    ]
    conclude = Conclude(
        expert_id="b1-moderator",
        board_id="b1",
        session_id="s1",
        expert=moderator,
        model=MODEL_ALIAS,
        topic="Should a small team adopt microservices?",
        round=1,
        max_rounds=1,
        transcript=transcript,
        max_tokens=160,
    )
    answer = await collect(provider, llm_request(conclude), ignore, timeout=ANSWER_TIMEOUT)
    summaries = ["They agree to start simple."]
    for text in (answer.text, f"Sure! Here it is:\n```json\n{answer.text}\n```\nThank you."):
        concluded = parse_conclusion(text, board_id="b1", total_rounds=1, summaries=summaries)
        assert concluded.summary.strip() and concluded.total_rounds == 1
