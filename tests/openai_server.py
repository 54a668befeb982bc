"""A local server that speaks the OpenAI `/v1/chat/completions` streaming wire format (SSE).

It stands in for vLLM, Ollama or OpenAI in tests. The requested `model`
chooses its behaviour: `scripted` acts like a small tool-using model (it
calls `calculator` for arithmetic, then answers from the result), `broken`
drops the connection mid-stream, `truncated` ends without `[DONE]`,
`endless` never stops talking (whatever `max_tokens` says) until the client
goes away, `rate-limited` answers 429 and `error` answers 500.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

_ARITHMETIC = re.compile(r"\d+\s*[-+*/]\s*\d+")


def _chunk(delta: dict[str, Any] | None = None, usage: dict[str, int] | None = None) -> str:
    body: dict[str, Any] = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "choices": []}
    if delta is not None:
        body["choices"] = [{"index": 0, "delta": delta, "finish_reason": None}]
    if usage is not None:
        body["usage"] = usage
    return f"data: {json.dumps(body)}\n\n"


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == len(words) - 1 else w + " " for i, w in enumerate(words)]


async def _scripted(body: dict[str, Any]) -> AsyncIterator[str]:
    messages = body["messages"]
    last = messages[-1]
    tools = [t["function"]["name"] for t in body.get("tools", [])]
    if last["role"] == "tool":
        for word in _words(f"The result is {last['content'].split('=')[-1].strip()}."):
            yield _chunk({"content": word})
    elif "calculator" in tools and (found := _ARITHMETIC.search(last["content"])):
        yield _chunk({"role": "assistant", "content": "Let me compute."})
        call = {
            "index": 0,
            "id": "call_test_1",
            "type": "function",
            "function": {"name": "calculator", "arguments": ""},
        }
        yield _chunk({"tool_calls": [call]})
        arguments = json.dumps({"expression": found.group(0)})
        half = len(arguments) // 2
        for part in (arguments[:half], arguments[half:]):
            yield _chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
    else:
        for word in _words("Hello from the test model."):
            yield _chunk({"content": word})
    yield _chunk(usage={"prompt_tokens": 11, "completion_tokens": 7})
    yield "data: [DONE]\n\n"


async def _broken(body: dict[str, Any]) -> AsyncIterator[str]:
    yield _chunk({"content": "Half an "})
    yield _chunk({"content": "answer"})
    raise ConnectionResetError("the test server drops the connection")


async def _truncated(body: dict[str, Any]) -> AsyncIterator[str]:
    yield _chunk({"content": "Cut short"})


class OpenAIServer:
    """Serve the fake model on a free local port; `requests` holds every JSON body received."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.abandoned = asyncio.Event()
        """Set once a client stopped reading an endless stream (the server's generation was cancelled)."""
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        app = Starlette(routes=[Route("/v1/chat/completions", self._complete, methods=["POST"])])
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        )
        self._task: asyncio.Task[None] | None = None

    async def _complete(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        model = body.get("model")
        if model == "rate-limited":
            return JSONResponse({"error": {"message": "Rate limit reached"}}, status_code=429)
        if model == "error":
            return JSONResponse({"error": {"message": "internal failure"}}, status_code=500)
        stream = {"broken": _broken, "truncated": _truncated, "endless": self._endless}.get(model, _scripted)
        return StreamingResponse(stream(body), media_type="text/event-stream")

    async def _endless(self, body: dict[str, Any]) -> AsyncIterator[str]:
        try:
            while True:
                yield _chunk({"content": "more "})
                await asyncio.sleep(0.005)
        finally:
            self.abandoned.set()

    async def __aenter__(self) -> OpenAIServer:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
