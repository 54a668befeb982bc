"""An OpenAI-compatible `/v1/chat/completions` provider over httpx, streaming (SSE) with tool calls.

Serves OpenAI, vLLM, Ollama, llama.cpp server and anything else that speaks
that wire format. Every failure (an HTTP error status such as 429 or 500, a
connection error, a stream that ends before `[DONE]`, a chunk that is not
the expected JSON) becomes a `ProviderError`, which the fallback chain handles.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec

from ..errors import ProviderError
from .protocol import Delta, LLMMessage, LLMRequest, TextDelta, ToolCallDelta, ToolSpec, Usage


class _FunctionPart(msgspec.Struct, kw_only=True):
    name: str | None = None
    arguments: str | None = None


class _ToolCallPart(msgspec.Struct, kw_only=True):
    index: int = 0
    id: str | None = None
    function: _FunctionPart | None = None


class _DeltaPart(msgspec.Struct, kw_only=True):
    content: str | None = None
    tool_calls: list[_ToolCallPart] | None = None


class _Choice(msgspec.Struct, kw_only=True):
    delta: _DeltaPart | None = None


class _Usage(msgspec.Struct, kw_only=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Chunk(msgspec.Struct, kw_only=True):
    """One `data:` line of the stream (unknown fields are ignored, as servers add their own)."""

    choices: list[_Choice] = []
    usage: _Usage | None = None


_chunks = msgspec.json.Decoder(_Chunk)
_encoder = msgspec.json.Encoder()


def _message(message: LLMMessage) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = [
            {"id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    return wire


def _tool(spec: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": spec.name, "description": spec.description, "parameters": spec.parameters},
    }


def request_body(request: LLMRequest) -> dict[str, Any]:
    """The JSON body of a streaming chat completion for `request`."""
    messages = [{"role": "system", "content": request.system_prompt}] if request.system_prompt else []
    body: dict[str, Any] = {
        "model": request.model,
        "messages": messages + [_message(m) for m in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.tools:
        body["tools"] = [_tool(spec) for spec in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = {"type": "function", "function": {"name": request.tool_choice}}
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    return body


class OpenAIProvider:
    """Streams chat completions from `base_url` (which ends in `/v1`)."""

    def __init__(
        self, base_url: str, *, api_key: str | None = None, timeout: float = 60.0, name: str = "openai"
    ) -> None:
        self.name = name
        self._url = base_url.rstrip("/") + "/chat/completions"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # One client per provider: connections are pooled across turns.
        self._client = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def stream(self, request: LLMRequest) -> AsyncIterator[Delta]:
        body = _encoder.encode(request_body(request))
        try:
            async with self._client.stream(
                "POST", self._url, content=body, headers={"content-type": "application/json"}
            ) as response:
                if response.status_code != 200:
                    detail = (await response.aread()).decode(errors="replace")[:200]
                    raise ProviderError(self.name, f"HTTP {response.status_code}: {detail}")
                async for delta in self._deltas(response):
                    yield delta
        except httpx.HTTPError as exc:
            raise ProviderError(self.name, f"{type(exc).__name__}: {exc}") from None

    async def _deltas(self, response: httpx.Response) -> AsyncIterator[Delta]:
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, comments (": keep-alive"), event names
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                chunk = _chunks.decode(data)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise ProviderError(self.name, f"unreadable stream chunk: {exc}") from None
            for choice in chunk.choices:
                if choice.delta is None:
                    continue
                if choice.delta.content:
                    yield TextDelta(text=choice.delta.content)
                for part in choice.delta.tool_calls or []:
                    function = part.function or _FunctionPart()
                    yield ToolCallDelta(
                        index=part.index, call_id=part.id, name=function.name, arguments=function.arguments or ""
                    )
            if chunk.usage is not None:
                yield Usage(prompt_tokens=chunk.usage.prompt_tokens, completion_tokens=chunk.usage.completion_tokens)
        raise ProviderError(self.name, "the stream ended before [DONE]")
