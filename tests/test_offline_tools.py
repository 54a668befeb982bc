"""The offline provider's tool moves: it calls a fitting tool first, then answers from the result."""

from __future__ import annotations

import json

from actors.llm import LLMMessage, LLMRequest, ToolCall, offline_answer
from actors.llm.offline_tools import offline_tool_move
from actors.tools import BUILTIN_TOOLS

TOOLS = [tool.spec() for tool in BUILTIN_TOOLS.select(["calculator", "clock", "ask_human", "delete_upload"])]


def first_call(content: str) -> ToolCall:
    move = offline_tool_move(
        LLMRequest(model="offline", messages=[LLMMessage(role="user", content=content)], tools=TOOLS)
    )
    assert move is not None and move.text and len(move.calls) == 1
    return move.calls[0]


def test_each_kind_of_message_calls_its_tool() -> None:
    assert first_call("what is 17*23?") == ToolCall(
        call_id="call_1_0", name="calculator", arguments=json.dumps({"expression": "17*23"})
    )
    assert first_call("What time is it?").name == "clock"
    assert json.loads(first_call("please delete notes.txt").arguments) == {"filename": "notes.txt"}
    assert json.loads(first_call("ask me for my name").arguments) == {"question": "What is your name?"}


def test_after_the_tool_result_it_answers_from_it() -> None:
    call = first_call("what is 17*23?")
    messages = [
        LLMMessage(role="user", content="what is 17*23?"),
        LLMMessage(role="assistant", content="", tool_calls=[call]),
        LLMMessage(role="tool", content="17*23 = 391", tool_call_id=call.call_id),
    ]
    move = offline_tool_move(LLMRequest(model="offline", messages=messages, tools=TOOLS))
    assert move is not None and move.calls == [] and "391" in move.text


def test_a_plain_message_keeps_the_plain_answer() -> None:
    request = LLMRequest(model="offline", messages=[LLMMessage(role="user", content="hello")], tools=TOOLS)
    assert offline_tool_move(request) is None
    assert offline_answer(request).startswith('You said: "hello"')
