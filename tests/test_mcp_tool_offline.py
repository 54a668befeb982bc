"""The offline provider calls an MCP server's tool a message names, so `make run` shows MCP tools with no model."""

from __future__ import annotations

import json

from actors.llm import LLMMessage, LLMRequest, ToolSpec
from actors.llm.offline_tools import offline_tool_move

TOOLS = [
    ToolSpec(name=name, description="", parameters={"type": "object", "properties": {}})
    for name in ("files__read", "files__read_text_file", "calculator")
]


def first_call(content: str) -> tuple[str, dict[str, object]]:
    request = LLMRequest(model="offline", messages=[LLMMessage(role="user", content=content)], tools=TOOLS)
    move = offline_tool_move(request)
    assert move is not None and len(move.calls) == 1
    return move.calls[0].name, json.loads(move.calls[0].arguments)


def test_a_named_mcp_tool_is_called_with_the_json_object_after_its_name() -> None:
    assert first_call('please files__read_text_file {"path": "/srv/a.txt", "head": 3} thanks') == (
        "files__read_text_file",
        {"path": "/srv/a.txt", "head": 3},
    )
    assert first_call("files__read") == ("files__read", {})  # the longest name that fits wins, no arguments
    assert first_call("files__read {not json") == ("files__read", {})


def test_after_its_result_the_answer_is_the_result() -> None:
    content = 'files__read {"path": "x"}'
    request = LLMRequest(model="offline", messages=[LLMMessage(role="user", content=content)], tools=TOOLS)
    move = offline_tool_move(request)
    assert move is not None
    messages = [
        LLMMessage(role="user", content=content),
        LLMMessage(role="assistant", content=move.text, tool_calls=move.calls),
        LLMMessage(role="tool", content="the file says hi", tool_call_id=move.calls[0].call_id),
    ]
    answer = offline_tool_move(LLMRequest(model="offline", messages=messages, tools=TOOLS))
    assert answer is not None and answer.calls == [] and answer.text.startswith("the file says hi")
