"""The agent turn's ReAct decisions as pure functions: no services, time passed in."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from actors.config import load_config
from actors.llm import LLMMessage, ToolCall
from actors.llm.fallback import ModelOutput
from actors.tools import BUILTIN_TOOLS, ToolError, evaluate
from actors.turn.logic import (
    CallModel,
    Done,
    Record,
    RunTool,
    Wait,
    decide_cancel,
    decide_confirmation,
    decide_output,
    decide_reply,
    decide_start,
    next_action,
)
from actors.turn.phases import PhasePolicy
from actors.turn.prompt import conversation
from actors.turn.setup import SetupRefused, TurnSetup, resolve_setup
from actors.turn.state import TurnState, evolve
from schemas.events import (
    ConfirmationRequested,
    ConfirmationResolved,
    HumanAsked,
    ModelCalled,
    PhaseChanged,
    PhaseViolation,
    SkillMatched,
    ToolCalled,
    ToolResult,
    TurnCancelled,
    TurnCompleted,
)

CONFIG = load_config()
PHASES = PhasePolicy(CONFIG.plan_exec)
BUDGET = CONFIG.limits.chat.prompt_tokens
NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
T = "turn1"


def setup(content: str = "what can you do?", **overrides: object) -> TurnSetup:
    resolved = resolve_setup(CONFIG, "assistant", content, **overrides)  # type: ignore[arg-type]
    assert isinstance(resolved, TurnSetup)
    return resolved


def started(s: TurnSetup) -> TurnState:
    state = TurnState()
    for event in decide_start(s, T, T, PHASES):
        evolve(state, event)
    return state


def act(state: TurnState, s: TurnSetup, now: datetime = NOW):
    return next_action(state, s, BUILTIN_TOOLS, PHASES, T, now)


def record(state: TurnState, events: list) -> TurnState:
    for event in events:
        evolve(state, event)
    return state


def called(state: TurnState, s: TurnSetup, tool: str, arguments: dict, step: int = 1) -> TurnState:
    output = ModelOutput(
        text="let me see", calls=[ToolCall(call_id=f"c{step}", name=tool, arguments=json.dumps(arguments))], tier="main"
    )
    return record(state, decide_output(state, s, step, output, T))


def test_calculator_evaluates_arithmetic_and_refuses_anything_else() -> None:
    assert evaluate("17*23") == 391 and evaluate("(2+3)^2") == 25 and evaluate("-7 // 2") == -4
    for bad in ["__import__('os').system('true')", "a+1", "2**99999", "1/0", "[1]*3", "True+1", ""]:
        with pytest.raises(ToolError):
            evaluate(bad)


def test_a_fresh_turn_calls_the_model_for_step_one() -> None:
    s = setup()
    assert act(started(s), s) == CallModel(step=1)


def test_a_plain_answer_completes_the_turn_with_its_tier() -> None:
    s = setup()
    state = started(s)
    called, completed = decide_output(state, s, 1, ModelOutput(text="Hello", tier="recovery"), T)
    assert called == ModelCalled(turn_id=T, step=1, tier="recovery")
    assert completed == TurnCompleted(turn_id=T, content="Hello", tier="recovery")


def test_a_tool_call_is_recorded_with_its_thought_then_run_then_the_model_is_asked_again() -> None:
    s = setup()
    state = called(started(s), s, "calculator", {"expression": "17*23"})
    assert state.last_step is not None and state.last_step.thought == "let me see"
    action = act(state, s)
    assert isinstance(action, RunTool) and action.call.name == "calculator"
    record(state, [ToolResult(turn_id=T, step=1, call_id="c1", tool="calculator", content="17*23 = 391")])
    assert act(state, s) == CallModel(step=2)


def test_a_replayed_turn_does_not_repeat_a_recorded_tool_call() -> None:
    s = setup()
    live = called(started(s), s, "calculator", {"expression": "1+1"})
    record(live, [ToolResult(turn_id=T, step=1, call_id="c1", tool="calculator", content="1+1 = 2")])
    events = [
        *decide_start(s, T, T, PHASES),
        *decide_output(
            TurnState(),
            s,
            1,
            ModelOutput(text="x", calls=[ToolCall(call_id="c1", name="calculator", arguments='{"expression": "1+1"}')]),
            T,
        ),
    ]
    events.append(ToolResult(turn_id=T, step=1, call_id="c1", tool="calculator", content="1+1 = 2"))
    replayed = record(TurnState(), events)
    assert act(replayed, s) == act(live, s) == CallModel(step=2)
    _, messages = conversation(replayed, s, [], PHASES, BUDGET)
    assert [m.role for m in messages] == ["assistant", "tool"] and messages[1].tool_call_id == "c1"


def test_invalid_arguments_go_back_to_the_model_as_a_tool_error() -> None:
    s = setup()
    state = called(started(s), s, "calculator", {"expr": "1+1"})
    action = act(state, s)
    assert isinstance(action, Record)
    [result] = action.events
    assert isinstance(result, ToolResult) and result.is_error and "invalid arguments" in result.content


def test_an_unknown_tool_is_a_tool_error_not_a_crash() -> None:
    s = setup()
    action = act(called(started(s), s, "rm_rf", {}), s)
    assert isinstance(action, Record) and action.events[0].is_error  # type: ignore[union-attr]


def test_a_tool_needing_confirmation_asks_waits_and_runs_only_when_approved() -> None:
    s = setup()
    state = called(started(s), s, "delete_upload", {"filename": "a.txt"})
    action = act(state, s)
    assert isinstance(action, Record)
    [requested] = action.events
    assert isinstance(requested, ConfirmationRequested) and requested.expires_at == NOW + timedelta(seconds=300)
    record(state, [requested])
    assert act(state, s, NOW + timedelta(seconds=10)) == Wait(until=NOW + timedelta(seconds=300))
    assert decide_confirmation(state, "nope", True, NOW) is None
    approved = decide_confirmation(state, requested.confirmation_id, True, NOW)
    assert approved == [ConfirmationResolved(turn_id=T, confirmation_id=requested.confirmation_id, approved=True)]
    record(state, approved)
    assert isinstance(act(state, s), RunTool)
    assert decide_confirmation(state, requested.confirmation_id, False, NOW) == []  # answered already


def test_a_denied_confirmation_becomes_a_result_saying_nothing_changed() -> None:
    s = setup()
    state = called(started(s), s, "delete_upload", {"filename": "a.txt"})
    requested = act(state, s).events[0]  # type: ignore[union-attr]
    record(state, [requested])
    record(state, decide_confirmation(state, requested.confirmation_id, False, NOW) or [])
    action = act(state, s)
    assert isinstance(action, Record) and "Nothing was changed" in action.events[0].content  # type: ignore[union-attr]


def test_the_confirmation_timeout_is_measured_from_the_recorded_request() -> None:
    s = setup()
    state = called(started(s), s, "delete_upload", {"filename": "a.txt"})
    requested = act(state, s, NOW - timedelta(seconds=299)).events[0]  # type: ignore[union-attr]
    record(state, [requested])  # e.g. recorded before a restart 299 s ago
    action = act(state, s, NOW + timedelta(seconds=1))
    assert isinstance(action, Record)
    assert action.events == [
        ConfirmationResolved(turn_id=T, confirmation_id=requested.confirmation_id, approved=False, timed_out=True)
    ]
    late = decide_confirmation(state, requested.confirmation_id, True, NOW + timedelta(seconds=2))
    assert late is not None and late[0].approved is False  # type: ignore[union-attr]


def test_ask_human_records_the_question_and_the_reply_becomes_the_tool_result() -> None:
    s = setup()
    state = called(started(s), s, "ask_human", {"question": "Your name?"})
    [asked] = act(state, s).events  # type: ignore[union-attr]
    assert isinstance(asked, HumanAsked) and asked.question == "Your name?"
    record(state, [asked])
    assert isinstance(act(state, s), Wait)
    record(state, decide_reply(state, asked.request_id, "Ada") or [])
    action = act(state, s)
    assert isinstance(action, Record) and action.events[0].content == "Ada"  # type: ignore[union-attr]
    assert decide_reply(state, "other", "x") is None


def test_the_step_limit_ends_a_runaway_loop_with_a_clear_message() -> None:
    s = setup()
    state = started(s)
    for step in range(1, s.max_steps + 1):
        called(state, s, "clock", {}, step)
        record(state, [ToolResult(turn_id=T, step=step, call_id=f"c{step}", tool="clock", content="noon")])
    action = act(state, s)
    assert isinstance(action, Record) and "stopped after 8 steps" in action.events[0].content  # type: ignore[union-attr]


def test_plan_exec_starts_in_the_first_phase_and_forbids_tools_there() -> None:
    s = setup(execution_mode="plan_exec")
    state = started(s)
    assert state.phase == "plan" and "advance_phase" in s.tools
    called(state, s, "calculator", {"expression": "1+1"})
    action = act(state, s)
    assert isinstance(action, Record) and isinstance(action.events[0], PhaseViolation)
    assert action.events[1].is_error  # type: ignore[union-attr]


def test_advance_phase_records_the_transition() -> None:
    s = setup(execution_mode="plan_exec")
    state = called(started(s), s, "advance_phase", {})
    action = act(state, s)
    assert isinstance(action, Record)
    assert action.events[0] == PhaseChanged(turn_id=T, phase="execute", previous="plan")


def test_direct_mode_offers_no_tools_and_one_call_answers() -> None:
    s = setup(execution_mode="direct")
    assert s.tools == []
    output = ModelOutput(text="hi", calls=[ToolCall(call_id="x", name="clock", arguments="{}")])
    assert isinstance(decide_output(started(s), s, 1, output, T)[-1], TurnCompleted)


def test_a_skill_prefix_chooses_the_skill_and_is_stripped_for_the_model() -> None:
    s = setup("@skill:math 6*7")
    assert s.skill == "math" and s.tools == ["calculator"] and s.content == "6*7"
    assert any(isinstance(e, SkillMatched) for e in decide_start(s, T, T, PHASES))
    refused = resolve_setup(CONFIG, "assistant", "@skill:nope hi")
    assert isinstance(refused, SetupRefused) and refused.code == "unknown_skill"


def test_cancel_ends_a_running_turn_once() -> None:
    s = setup()
    state = started(s)
    assert decide_cancel(state, T) == [TurnCancelled(turn_id=T)]
    record(state, [TurnCancelled(turn_id=T)])
    assert decide_cancel(state, T) == [] and act(state, s) == Done()


def test_emergency_output_completes_with_the_structured_error() -> None:
    from schemas.events import FallbackError

    s = setup()
    error = FallbackError(code="llm_unavailable", message="none", failures=["main: down"])
    [completed] = decide_output(started(s), s, 1, ModelOutput(error=error), T)
    assert isinstance(completed, TurnCompleted) and completed.tier == "emergency" and completed.error == error


def test_called_tool_events_carry_the_arguments_the_model_gave() -> None:
    s = setup()
    state = called(started(s), s, "clock", {})
    assert isinstance(state.last_step.calls[0].call, ToolCall)  # type: ignore[union-attr]
    assert ToolCalled(turn_id=T, step=1, call_id="c1", tool="clock", arguments="{}").arguments == "{}"


def test_the_usage_of_every_model_call_is_recorded_and_the_turn_completes_with_the_sum() -> None:
    s = setup()
    state = started(s)
    tool_step = ModelOutput(
        text="let me see",
        calls=[ToolCall(call_id="c1", name="calculator", arguments='{"expression": "2*3"}')],
        tier="main",
        prompt_tokens=100,
        completion_tokens=7,
    )
    record(state, decide_output(state, s, 1, tool_step, T))
    record(state, [ToolResult(turn_id=T, step=1, call_id="c1", tool="calculator", content="2*3 = 6")])
    answer = ModelOutput(text="It is 6.", tier="main", prompt_tokens=130, completion_tokens=5, truncated=True)
    called, completed = decide_output(state, s, 2, answer, T)
    assert called == ModelCalled(turn_id=T, step=2, tier="main", prompt_tokens=130, completion_tokens=5, truncated=True)
    assert isinstance(completed, TurnCompleted)
    assert (completed.prompt_tokens, completed.completion_tokens, completed.truncated) == (230, 12, True)


def test_the_model_sees_the_newest_history_that_fits_its_prompt_budget() -> None:
    s = setup("the question")
    history = [
        LLMMessage(role="user" if i % 2 == 0 else "assistant", content=f"{i:03} " + "x" * 396) for i in range(20)
    ]
    history.append(LLMMessage(role="user", content="the question"))
    _, messages = conversation(started(s), s, history, PHASES, budget=1000)
    assert messages[-1].content == "the question"
    assert 1 < len(messages) < len(history)
    kept = [m.content[:3] for m in messages[:-1]]
    assert kept == [f"{i:03}" for i in range(20 - len(kept), 20)]  # the newest, in order


@pytest.mark.parametrize("greeting", ["hi", "Hello!", "hey", "good morning.", "你好", "您好！"])
def test_a_greeting_is_answered_in_the_direct_chat_mode(greeting: str) -> None:
    s = setup(greeting)
    assert (s.execution_mode, s.tools) == ("direct", [])


def test_a_greeting_with_more_to_say_or_an_explicit_mode_is_a_normal_turn() -> None:
    assert setup("hi, what is 6*7?").execution_mode == "react"
    assert setup("hi", execution_mode="react").execution_mode == "react"


def test_plan_exec_switched_off_runs_the_react_loop() -> None:
    off = msgspec.structs.replace(CONFIG, plan_exec=msgspec.structs.replace(CONFIG.plan_exec, enabled=False))
    resolved = resolve_setup(off, "assistant", "do it", execution_mode="plan_exec")
    assert isinstance(resolved, TurnSetup) and resolved.execution_mode == "react"
    assert "advance_phase" not in resolved.tools
