"""The effect ledger's decisions (pure, no services): a tool run is recorded as started before it runs, and a
start without a result is run again only if the tool is idempotent; otherwise the user decides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from actors.config import load_config
from actors.llm import ToolCall
from actors.llm.fallback import ModelOutput
from actors.tools import BUILTIN_TOOLS, Tool, ToolContext, ToolRegistry
from actors.turn.logic import (
    CallModel,
    Record,
    RunTool,
    Wait,
    decide_confirmation,
    decide_output,
    decide_start,
    next_action,
    tool_result,
)
from actors.turn.phases import PhasePolicy
from actors.turn.prompt import conversation
from actors.turn.setup import TurnSetup, resolve_setup
from actors.turn.state import TurnState, evolve
from schemas.events import (
    AnyEvent,
    ConfirmationRequested,
    ConfirmationResolved,
    ToolOutcomeUnknown,
    ToolResult,
    ToolStarted,
)

CONFIG = load_config()
PHASES = PhasePolicy(CONFIG.plan_exec)
NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
T = "turn1"


class MailArgs(msgspec.Struct, frozen=True, kw_only=True):
    to: str


async def _send(args: MailArgs, _: ToolContext) -> str:
    return f"sent to {args.to}"


SEND_MAIL = Tool(name="send_mail", description="Send a mail.", args=MailArgs, run=_send)
PAY = Tool(name="pay", description="Pay.", args=MailArgs, run=_send, needs_confirmation=True)
TOOLS = ToolRegistry([*BUILTIN_TOOLS.select(["calculator"]), SEND_MAIL, PAY])
ARGUMENTS = {"calculator": '{"expression": "1+1"}', "send_mail": '{"to": "ada"}', "pay": '{"to": "ada"}'}


def setup() -> TurnSetup:
    resolved = resolve_setup(CONFIG, "assistant", "go")
    assert isinstance(resolved, TurnSetup)
    return msgspec.structs.replace(resolved, tools=list(ARGUMENTS))


def opening(tool: str) -> list[AnyEvent]:
    """A turn whose model called `tool` once (call id `c1`)."""
    s = setup()
    events = decide_start(s, T, T, PHASES)
    output = ModelOutput(calls=[ToolCall(call_id="c1", name=tool, arguments=ARGUMENTS[tool])], tier="main")
    return [*events, *decide_output(replay(events), s, 1, output, T)]


def replay(events: list[AnyEvent]) -> TurnState:
    state = TurnState()
    for event in events:
        evolve(state, event)
    return state


def act(events: list[AnyEvent], now: datetime = NOW):
    return next_action(replay(events), setup(), TOOLS, PHASES, T, now)


def answered(events: list[AnyEvent], confirmation_id: str, approved: bool = True) -> list[AnyEvent]:
    return [*events, *(decide_confirmation(replay(events), confirmation_id, approved, NOW) or [])]


def test_a_run_is_recorded_as_started_with_the_calls_stable_key_before_it_runs() -> None:
    action = act(opening("send_mail"))
    assert isinstance(action, RunTool)
    assert action.started == ToolStarted(
        turn_id=T, step=1, call_id="c1", tool="send_mail", effect_key="turn1:c1", attempt=1, idempotent=False
    )


def test_an_idempotent_run_cut_by_a_stop_is_run_again_under_the_same_key() -> None:
    events = opening("calculator")
    first = act(events)
    assert isinstance(first, RunTool) and first.started.idempotent
    events.append(first.started)  # … and the worker died while the tool ran
    again = act(events)
    assert isinstance(again, RunTool) and (again.started.attempt, again.started.effect_key) == (2, "turn1:c1")
    events += [again.started, *tool_result(replay(events), 1, again.call, "1+1 = 2", False, T)]
    assert act(events) == CallModel(step=2)
    [result] = [e for e in events if isinstance(e, ToolResult)]
    assert result.content == "1+1 = 2"  # nothing to tell: running it again was safe


def test_a_cut_run_of_a_tool_that_is_not_idempotent_is_recorded_as_unknown_and_the_user_asked() -> None:
    events = opening("send_mail")
    events.append(act(events).started)  # type: ignore[union-attr]
    action = act(events)
    assert isinstance(action, Record)
    unknown, asked = action.events
    assert unknown == ToolOutcomeUnknown(
        turn_id=T, step=1, call_id="c1", tool="send_mail", effect_key="turn1:c1", attempt=1
    )
    assert isinstance(asked, ConfirmationRequested) and asked.confirmation_id == "turn1-u1-0-1"
    assert asked.call_id == "c1" and "run it again" in asked.reason and asked.expires_at == NOW + timedelta(minutes=5)
    events += action.events
    assert act(events, NOW + timedelta(seconds=1)) == Wait(until=NOW + timedelta(minutes=5))


def test_run_again_runs_the_call_once_more_and_its_result_says_the_first_outcome_is_unknown() -> None:
    events = opening("send_mail")
    events.append(act(events).started)  # type: ignore[union-attr]
    events += act(events).events  # type: ignore[union-attr]
    assert decide_confirmation(replay(events), "turn1-u1-0-1", True, NOW) == [
        ConfirmationResolved(turn_id=T, confirmation_id="turn1-u1-0-1", approved=True)
    ]
    events += decide_confirmation(replay(events), "turn1-u1-0-1", True, NOW) or []
    again = act(events)
    assert isinstance(again, RunTool) and again.started.attempt == 2
    events += [again.started, *tool_result(replay(events), 1, again.call, "sent to ada", False, T)]
    _, messages = conversation(replay(events), setup(), [], PHASES, 4096)
    assert "outcome is unknown; the user chose to run it again" in messages[-1].content
    assert messages[-1].content.endswith("sent to ada")


def test_go_on_without_it_does_not_run_the_call_and_tells_the_model_the_outcome_is_unknown() -> None:
    events = opening("send_mail")
    events.append(act(events).started)  # type: ignore[union-attr]
    events += act(events).events  # type: ignore[union-attr]
    events += decide_confirmation(replay(events), "turn1-u1-0-1", False, NOW) or []
    action = act(events)
    assert isinstance(action, Record)
    [result] = action.events
    assert isinstance(result, ToolResult) and "unknown" in result.content
    assert "the user chose to go on without it" in result.content
    assert act([*events, result]) == CallModel(step=2)


def test_a_tool_needing_confirmation_that_was_cut_asks_again_with_a_question_of_its_own() -> None:
    events = opening("pay")
    [asked] = act(events).events  # type: ignore[union-attr]
    assert isinstance(asked, ConfirmationRequested)
    events = answered([*events, asked], asked.confirmation_id)
    events.append(act(events).started)  # type: ignore[union-attr]  # … and the worker died while it paid
    unknown, again = act(events).events  # type: ignore[union-attr]
    assert isinstance(again, ConfirmationRequested) and again.confirmation_id != asked.confirmation_id
    events += [unknown, again]
    assert decide_confirmation(replay(events), asked.confirmation_id, True, NOW) == []  # answered before the run
    rerun = act(answered(events, again.confirmation_id))
    assert isinstance(rerun, RunTool) and rerun.started.attempt == 2


def test_no_answer_in_time_goes_on_without_the_call() -> None:
    events = opening("send_mail")
    events.append(act(events).started)  # type: ignore[union-attr]
    events += act(events).events  # type: ignore[union-attr]
    late = NOW + timedelta(minutes=6)
    [timed_out] = act(events, late).events  # type: ignore[union-attr]
    assert timed_out == ConfirmationResolved(turn_id=T, confirmation_id="turn1-u1-0-1", approved=False, timed_out=True)
    [result] = act([*events, timed_out], late).events  # type: ignore[union-attr]
    assert "the user did not answer in time" in result.content  # type: ignore[union-attr]


@given(cuts=st.lists(st.booleans(), max_size=6), answers=st.lists(st.booleans(), max_size=6))
def test_however_often_runs_are_cut_the_tool_runs_once_per_go_ahead_and_gets_one_result(
    cuts: list[bool], answers: list[bool]
) -> None:
    """Replaying the log before every decision (as a restart does): an idempotent tool runs until one run ends;
    the others run once more per go-ahead (the first run of one that needs no confirmation needs none)."""
    for tool in ARGUMENTS:
        events, runs, approvals, cut_runs = opening(tool), 0, 0, 0
        pending_cuts, pending_answers = list(cuts), list(answers)
        while not isinstance(action := act(events), CallModel):
            match action:
                case RunTool(call=call, started=started):
                    events.append(started)
                    runs += 1
                    if pending_cuts and pending_cuts.pop(0):
                        cut_runs += 1
                        continue  # killed while it ran: no result
                    events += tool_result(replay(events), 1, call, "done", False, T)
                case Record(events=recorded):
                    events += recorded
                case Wait():
                    approved = pending_answers.pop(0) if pending_answers else False
                    approvals += approved
                    asked = [e for e in events if isinstance(e, ConfirmationRequested)][-1]
                    events += decide_confirmation(replay(events), asked.confirmation_id, approved, NOW) or []
        assert len([e for e in events if isinstance(e, ToolResult)]) == 1
        unknown = len([e for e in events if isinstance(e, ToolOutcomeUnknown)])
        if tool == "calculator":
            assert (runs, unknown) == (cut_runs + 1, 0)
        else:
            assert runs == (tool == "send_mail") + approvals and unknown == cut_runs
