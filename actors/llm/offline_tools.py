"""The offline provider's tool use: deterministic moves that exercise every kind of tool.

Given the tools a request offers, the offline "model" calls one when the
user's message fits it (arithmetic → `calculator`, "what time" → `clock`,
"delete <name>" → `delete_upload`, which needs confirmation, a message that
names an upload by its stored name or download URL → `read_upload`, "ask me …"
→ `ask_human`, a message that names an MCP server's tool (`<server>__<tool>`)
→ that tool, with the JSON object after its name as the arguments), then
answers from the tool's result. In `plan_exec` it reads
its phase from the system prompt; in the first phase it acts hastily (it
calls the tool before planning), which shows the phase policy at work.
"""

from __future__ import annotations

import json
import re

import msgspec

from .protocol import LLMMessage, LLMRequest, ToolCall

_ARITHMETIC = re.compile(r"[-(]*\d[\d.\s()]*(?:(?:\*\*|//|[-+*/^%×÷])[\s(]*-?\d[\d.\s()]*)+")
_CLOCK = re.compile(
    r"\bwhat time\b|\btime is it\b|\bcurrent time\b|\bwhat day\b|\bwhat(?:'s| is) the date\b|\btoday'?s date\b", re.I
)
_DELETE = re.compile(
    r"\b(?:delete|remove)\s+(?:the\s+)?(?:upload(?:ed)?\s+)?(?:file\s+)?([A-Za-z0-9_][A-Za-z0-9._-]*)", re.I
)
# A stored name with its extension, or any stored name in a download URL: a bare 32-hex id is a session's too.
_UPLOAD = re.compile(r"(?<![0-9A-Za-z])(?:[0-9a-f]{32}\.[A-Za-z0-9]{1,10}|(?<=/uploads/)[0-9a-f]{32})(?![0-9A-Za-z])")
_ASK = re.compile(r"\bask me(?:\s+(?:for|about))?\s+(?P<what>[^.?!,]+)?", re.I)
_PHASE = re.compile(r"Current phase: (\S+?)\.")


class OfflineMove(msgspec.Struct, frozen=True, kw_only=True):
    """What the offline model says (`text`) and the tools it calls (none: a final answer)."""

    text: str
    calls: list[ToolCall] = []


def _intent(content: str, tools: set[str]) -> tuple[str, dict[str, object], str] | None:
    """The tool a message asks for: (tool, arguments, the thought that announces the call)."""
    if "calculator" in tools and (found := _ARITHMETIC.search(content)):
        expression = found.group(0).strip().rstrip("?.")
        if any(op in expression for op in "+-*/^%×÷") and not expression.lstrip("-").replace(".", "").isdigit():
            return "calculator", {"expression": expression}, f"I will use the calculator to work out {expression}."
    if "clock" in tools and _CLOCK.search(content):
        return "clock", {}, "I will look at the clock."
    if "delete_upload" in tools and (found := _DELETE.search(content)):
        name = found.group(1).rstrip(".")
        return "delete_upload", {"filename": name}, f"Deleting {name} cannot be undone, so I will ask you to confirm."
    if "read_upload" in tools and (found := _UPLOAD.search(content)):
        return "read_upload", {"filename": found.group(0)}, f"I will read the upload {found.group(0)}."
    if "ask_human" in tools and (found := _ASK.search(content)):
        what = re.sub(r"\bmy\b", "your", (found.group("what") or "").strip())
        question = f"What is {what}?" if what else "What more can you tell me?"
        return "ask_human", {"question": question}, "I need to ask you something first."
    return _named_tool(content, tools)


def _named_tool(content: str, tools: set[str]) -> tuple[str, dict[str, object], str] | None:
    """An MCP server's tool the message names, called with the JSON object that follows the name (or none)."""
    for name in sorted((tool for tool in tools if "__" in tool), key=len, reverse=True):
        at = content.find(name)
        if at < 0:
            continue
        rest = content[at + len(name) :].lstrip()
        try:
            arguments, _ = json.JSONDecoder().raw_decode(rest) if rest.startswith("{") else ({}, 0)
        except json.JSONDecodeError:
            arguments = {}
        return name, arguments, f"I will call {name}."
    return None


def _tail(messages: list[LLMMessage]) -> tuple[str, list[LLMMessage]]:
    """The last user message and what followed it (this turn's steps)."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "user":
            return messages[index].content, messages[index + 1 :]
    return "", list(messages)


def _results(tail: list[LLMMessage]) -> list[tuple[ToolCall, str]]:
    calls = {call.call_id: call for message in tail for call in message.tool_calls}
    return [(calls[m.tool_call_id], m.content) for m in tail if m.role == "tool" and m.tool_call_id in calls]


def _call(step: int, index: int, name: str, arguments: dict[str, object]) -> ToolCall:
    return ToolCall(call_id=f"call_{step}_{index}", name=name, arguments=json.dumps(arguments))


def _sentence(call: ToolCall, result: str) -> str:
    arguments = json.loads(call.arguments or "{}")
    failed = result.startswith("error: ")
    match call.name:
        case "calculator" if not failed:
            return f"The answer is {result.rsplit('=', 1)[-1].strip()} ({result})."
        case "delete_upload" if result.startswith("Not carried out"):
            return f"Understood: I did not delete {arguments.get('filename', 'the file')}, nothing was changed."
        case "ask_human" if not failed:
            return f'Thank you! You told me: "{result}".'
        case "advance_phase" if not failed:
            return ""
    if failed and "advance_phase first" in result:
        return ""  # a phase violation that was put right: not part of the answer
    if failed:
        return f"{call.name} did not work: {result[7:]}"
    return result


def _answer(user: str, results: list[tuple[ToolCall, str]]) -> str:
    sentences = [s for s in (_sentence(call, result) for call, result in results) if s]
    seen = [s for i, s in enumerate(sentences) if s not in sentences[:i]]
    answer = " ".join(seen[-2:]) if seen else f'I have worked through "{user.strip()}".'
    return f"{answer} (offline assistant)"


def offline_tool_move(request: LLMRequest) -> OfflineMove | None:
    """The offline model's next move when tools are offered; None when no tool fits (a plain answer)."""
    tools = {spec.name for spec in request.tools}
    user, tail = _tail(request.messages)
    results = _results(tail)
    step = sum(1 for m in tail if m.tool_calls) + 1
    intent = _intent(user, tools)
    phase = _PHASE.search(request.system_prompt or "")
    if phase is not None and "advance_phase" in tools:
        return _plan_exec_move(
            user, intent, results, step, phase.group(1), "this is the last phase" in (request.system_prompt or "")
        )
    if results:
        return OfflineMove(text=_answer(user, results))
    if intent is None:
        return None
    name, arguments, thought = intent
    return OfflineMove(text=thought, calls=[_call(step, 0, name, arguments)])


def _plan_exec_move(
    user: str,
    intent: tuple[str, dict[str, object], str] | None,
    results: list[tuple[ToolCall, str]],
    step: int,
    phase: str,
    last: bool,
) -> OfflineMove:
    if last:
        return OfflineMove(text=f"Verified. {_answer(user, results)}")
    advance = OfflineMove(
        text=f"The {phase} phase is done.", calls=[_call(step, 0, "advance_phase", {"summary": f"{phase} done"})]
    )
    if results and "advance_phase first" in results[-1][1]:
        return advance
    if intent is not None:
        name, arguments, thought = intent
        done = any(call.name == name and not result.startswith("error: ") for call, result in results)
        if not done:
            return OfflineMove(text=thought, calls=[_call(step, 0, name, arguments)])
    return advance
