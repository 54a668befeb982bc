"""The agent turn's ReAct logic as pure functions: what to do next, and which events record it.

The actor does the I/O around them (model calls, tools, waiting); everything
that decides is here and runs without services. Time comes in as `now`, so a
confirmation's timeout is measured from its recorded request, across restarts.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from schemas.events import (
    AnyEvent,
    ConfirmationRequested,
    ConfirmationResolved,
    HumanAsked,
    HumanReplied,
    ModelCalled,
    PhaseChanged,
    PhaseViolation,
    SkillMatched,
    Thinking,
    ToolCalled,
    ToolResult,
    ToolStarted,
    TurnCancelled,
    TurnCompleted,
    TurnStarted,
)

from ..llm import ToolCall
from ..llm.fallback import ModelOutput
from ..tools import InvalidArguments, ToolRegistry
from .effects import outcome_unknown, settled, skipped, start
from .phases import PhasePolicy
from .setup import TurnSetup
from .state import CallState, Step, TurnState

HUMAN_TIMEOUT = timedelta(seconds=300)
"""How long a confirmation or a question waits for the user (then: denied / no answer)."""
EMPTY_ANSWER = "(The model returned an empty answer.)"
EMERGENCY_ANSWER = "Sorry, no language model could answer right now. Please try again in a moment."


class CallModel(msgspec.Struct, frozen=True, kw_only=True):
    """Ask the model for step `step` (its answer goes to `decide_output`)."""

    step: int


class RunTool(msgspec.Struct, frozen=True, kw_only=True):
    """Record `started`, then run a function tool; its outcome goes to `tool_result`."""

    step: int
    call: ToolCall
    started: ToolStarted


class Wait(msgspec.Struct, frozen=True, kw_only=True):
    """Nothing to do until the user answers, or until `until` (then ask `next_action` again)."""

    until: datetime


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """Record these events, then ask `next_action` again."""

    events: list[AnyEvent]


class Done(msgspec.Struct, frozen=True, kw_only=True):
    """The turn has its outcome."""


Action = CallModel | RunTool | Wait | Record | Done


def decide_start(setup: TurnSetup, turn_id: str, user_message_id: str, phases: PhasePolicy) -> list[AnyEvent]:
    """The events that open a turn: started, the skill it matched, the first phase of `plan_exec`."""
    events: list[AnyEvent] = [
        TurnStarted(
            turn_id=turn_id,
            user_message_id=user_message_id,
            agent_name=setup.agent_name,
            model=setup.model or "",
            execution_mode=setup.execution_mode,
        )
    ]
    if setup.skill is not None:
        events.append(SkillMatched(turn_id=turn_id, skill=setup.skill, method="prefix"))
    if setup.execution_mode == "plan_exec":
        events.append(PhaseChanged(turn_id=turn_id, phase=phases.first, previous=None))
    return events


def next_action(
    state: TurnState, setup: TurnSetup, tools: ToolRegistry, phases: PhasePolicy, turn_id: str, now: datetime
) -> Action:
    """Decide the turn's next move from its recorded events alone."""
    if state.outcome is not None:
        return Done()
    step = state.last_step
    pending = step.pending() if step is not None else None
    if step is not None and pending is not None:
        return _next_for_call(state, step, pending, setup, tools, phases, turn_id, now)
    if len(state.steps) >= setup.max_steps:
        message = (
            f"I stopped after {len(state.steps)} steps without reaching a final answer (the limit is "
            f"{setup.max_steps}). Please ask again with a narrower question."
        )
        return Record(events=[TurnCompleted(turn_id=turn_id, content=message)])
    return CallModel(step=len(state.steps) + 1)


def _next_for_call(
    state: TurnState,
    step: Step,
    pending: CallState,
    setup: TurnSetup,
    tools: ToolRegistry,
    phases: PhasePolicy,
    turn_id: str,
    now: datetime,
) -> Action:
    call = pending.call
    index = step.calls.index(pending)

    def result(content: str, is_error: bool = False) -> ToolResult:
        return ToolResult(
            turn_id=turn_id,
            step=step.number,
            call_id=call.call_id,
            tool=call.name,
            content=settled(pending, content),
            is_error=is_error,
        )

    if pending.started is not None and not pending.started.idempotent:
        # A run was cut: it is never repeated silently, whether or not the tool is still offered.
        return Record(events=outcome_unknown(turn_id, index, call, pending.started, now, HUMAN_TIMEOUT))
    tool = tools.get(call.name) if call.name in setup.tools else None
    if tool is None:
        return Record(
            events=[result(f"unknown tool {call.name!r}; available: {', '.join(setup.tools) or 'none'}", True)]
        )
    if setup.execution_mode == "plan_exec" and not phases.allows(state.phase, call.name):
        message = f"{call.name} is not allowed in phase '{state.phase}'; call advance_phase first"
        violation = PhaseViolation(turn_id=turn_id, phase=state.phase or "", tool=call.name, message=message)
        return Record(events=[violation, result(message, True)])
    try:
        arguments = tool.parse(call.arguments)
    except InvalidArguments as exc:
        return Record(events=[result(str(exc), True)])
    match tool.kind:
        case "advance_phase":
            following = phases.next(state.phase)
            if following is None:
                return Record(events=[result(f"'{state.phase}' is the last phase: give the final answer now", True)])
            changed = PhaseChanged(turn_id=turn_id, phase=following, previous=state.phase)
            return Record(events=[changed, result(f"Now in phase '{following}'. {phases.describe(following)}")])
        case "ask_human":
            if pending.asked is None:
                request_id = f"{turn_id}-h{step.number}-{index}"
                asked = HumanAsked(
                    turn_id=turn_id,
                    request_id=request_id,
                    question=arguments.question,
                    call_id=call.call_id,
                    expires_at=now + HUMAN_TIMEOUT,
                )
                return Record(events=[asked])
            if pending.replied is not None:
                return Record(events=[result(pending.replied.content)])
            return _wait_or(pending.asked.expires_at, now, [result("The user did not answer in time.", True)])
    if tool.needs_confirmation:
        if pending.confirmation is None:
            requested = ConfirmationRequested(
                turn_id=turn_id,
                confirmation_id=f"{turn_id}-c{step.number}-{index}",
                command=f"{call.name} {call.arguments}",
                reason=f"{call.name} changes things that cannot be undone; it runs only if you approve.",
                call_id=call.call_id,
                expires_at=now + HUMAN_TIMEOUT,
            )
            return Record(events=[requested])
        if pending.resolved is None:
            timed_out = ConfirmationResolved(
                turn_id=turn_id, confirmation_id=pending.confirmation.confirmation_id, approved=False, timed_out=True
            )
            return _wait_or(pending.confirmation.expires_at, now, [timed_out])
        if not pending.resolved.approved:
            why = "no answer came in time" if pending.resolved.timed_out else "the user denied it"
            return Record(events=[result(f"Not carried out: {why}. Nothing was changed.")])
    if pending.unknown is not None and pending.started is None:
        rerun = pending.rerun
        assert rerun is not None  # recorded with the unknown outcome
        if pending.rerun_resolved is None:
            timed_out = ConfirmationResolved(
                turn_id=turn_id, confirmation_id=rerun.confirmation_id, approved=False, timed_out=True
            )
            return _wait_or(rerun.expires_at, now, [timed_out])
        if not pending.rerun_resolved.approved:
            return Record(events=[result(skipped(pending))])
    # Not started yet, an idempotent run cut (run again under the same key), or a run again the user approved.
    return RunTool(step=step.number, call=call, started=start(turn_id, step.number, pending, tool))


def _wait_or(expires_at: datetime | None, now: datetime, on_timeout: list[AnyEvent]) -> Action:
    if expires_at is not None and now >= expires_at:
        return Record(events=on_timeout)
    return Wait(until=expires_at or now + HUMAN_TIMEOUT)


def decide_output(
    state: TurnState,
    setup: TurnSetup,
    step: int,
    output: ModelOutput,
    turn_id: str,
    charged_to: list[str] | None = None,
) -> list[AnyEvent]:
    """Record a model call: the final answer, or its reasoning and tool calls (carried out next).

    `charged_to`: the departments whose quotas counted the call.
    """
    if state.outcome is not None:
        return []
    if output.error is not None:
        return [
            TurnCompleted(
                turn_id=turn_id,
                content=EMERGENCY_ANSWER,
                tier="emergency",
                error=output.error,
                prompt_tokens=state.prompt_tokens,
                completion_tokens=state.completion_tokens,
            )
        ]
    called = ModelCalled(
        turn_id=turn_id,
        step=step,
        tier=output.tier,
        prompt_tokens=output.prompt_tokens,
        completion_tokens=output.completion_tokens,
        truncated=output.truncated,
        charged_to=charged_to or [],
    )
    if not output.calls or setup.execution_mode == "direct":
        return [
            called,
            TurnCompleted(
                turn_id=turn_id,
                content=output.text if output.text.strip() else EMPTY_ANSWER,
                tier=output.tier,
                prompt_tokens=state.prompt_tokens + output.prompt_tokens,
                completion_tokens=state.completion_tokens + output.completion_tokens,
                truncated=output.truncated,
            ),
        ]
    events: list[AnyEvent] = [called]
    if output.text.strip():
        events.append(Thinking(turn_id=turn_id, step=step, content=output.text.strip()))
    for index, call in enumerate(output.calls):
        call_id = call.call_id or f"call_{step}_{index}"
        events.append(ToolCalled(turn_id=turn_id, step=step, call_id=call_id, tool=call.name, arguments=call.arguments))
    return events


def tool_result(
    state: TurnState, step: int, call: ToolCall, content: str, is_error: bool, turn_id: str
) -> list[AnyEvent]:
    """Record a function tool's outcome, unless the turn ended meanwhile or it is recorded already."""
    last = state.last_step
    pending = last.pending() if last is not None else None
    if state.outcome is not None or pending is None or pending.call.call_id != call.call_id:
        return []
    content = settled(pending, content)
    return [
        ToolResult(turn_id=turn_id, step=step, call_id=call.call_id, tool=call.name, content=content, is_error=is_error)
    ]


def decide_cancel(state: TurnState, turn_id: str) -> list[AnyEvent]:
    """Cancel the turn if it is still running."""
    if state.started is None or state.outcome is not None:
        return []
    return [TurnCancelled(turn_id=turn_id)]


def decide_confirmation(state: TurnState, confirmation_id: str, approved: bool, now: datetime) -> list[AnyEvent] | None:
    """Resolve a pending confirmation (after its timeout a late approval counts as denied).

    Return None if the turn asked for no such confirmation, [] if it is resolved already.
    """
    call = state.find_call(confirmation_id=confirmation_id)
    requested = call.confirmation_of(confirmation_id) if call is not None else None
    if call is None or requested is None:
        return None
    if call.resolution_of(confirmation_id) is not None or state.outcome is not None:
        return []
    expires_at = requested.expires_at
    timed_out = expires_at is not None and now >= expires_at
    return [
        ConfirmationResolved(
            turn_id=requested.turn_id,
            confirmation_id=confirmation_id,
            approved=approved and not timed_out,
            timed_out=timed_out,
        )
    ]


def decide_reply(state: TurnState, request_id: str, content: str) -> list[AnyEvent] | None:
    """Record the user's answer to a question; None if the turn asked no such question."""
    call = state.find_call(request_id=request_id)
    if call is None or call.asked is None:
        return None
    if call.replied is not None or call.result is not None or state.outcome is not None:
        return []
    return [HumanReplied(turn_id=call.asked.turn_id, request_id=request_id, content=content)]
