"""The agent turn's state, rebuilt by folding its own events (`evolve` is pure)."""

from __future__ import annotations

import msgspec

from schemas.events import (
    AnyEvent,
    ConfirmationRequested,
    ConfirmationResolved,
    HumanAsked,
    HumanReplied,
    ModelCalled,
    PhaseChanged,
    SkillMatched,
    Thinking,
    ToolCalled,
    ToolOutcomeUnknown,
    ToolResult,
    ToolStarted,
    TurnCancelled,
    TurnCompleted,
    TurnFailed,
    TurnStarted,
)

from ..llm import ToolCall


class CallState(msgspec.Struct, kw_only=True):
    """One tool call of a step and what happened to it so far."""

    call: ToolCall
    result: ToolResult | None = None
    confirmation: ConfirmationRequested | None = None
    resolved: ConfirmationResolved | None = None
    asked: HumanAsked | None = None
    replied: HumanReplied | None = None
    attempts: int = 0
    """Runs recorded as started."""
    started: ToolStarted | None = None
    """The latest run, while neither its result nor an unknown outcome is recorded."""
    unknown: ToolOutcomeUnknown | None = None
    """The latest run whose outcome is unknown (a non-idempotent tool cut by a stop)."""
    rerun: ConfirmationRequested | None = None
    """The question whether to run the call again after `unknown`."""
    rerun_resolved: ConfirmationResolved | None = None

    def confirmation_of(self, confirmation_id: str) -> ConfirmationRequested | None:
        """This call's confirmation of that id: before its first run, or to run it again."""
        for requested in (self.confirmation, self.rerun):
            if requested is not None and requested.confirmation_id == confirmation_id:
                return requested
        return None

    def resolution_of(self, confirmation_id: str) -> ConfirmationResolved | None:
        """The recorded answer to this call's confirmation of that id, if any."""
        if self.rerun is not None and self.rerun.confirmation_id == confirmation_id:
            return self.rerun_resolved
        return self.resolved


class Step(msgspec.Struct, kw_only=True):
    """One model call that asked for tools: its reasoning text and its calls, in order."""

    number: int
    thought: str = ""
    calls: list[CallState] = []

    def pending(self) -> CallState | None:
        """The first call without a result: calls of a step are carried out one after the other."""
        return next((call for call in self.calls if call.result is None), None)


class TurnState(msgspec.Struct, kw_only=True):
    """What a turn's own events say about it. Mutable: `evolve` updates it in place."""

    version: int = 0
    started: TurnStarted | None = None
    skill: SkillMatched | None = None
    phase: str | None = None
    steps: list[Step] = []
    outcome: TurnCompleted | TurnFailed | TurnCancelled | None = None
    prompt_tokens: int = 0
    """Summed over the turn's recorded model calls."""
    completion_tokens: int = 0

    @property
    def last_step(self) -> Step | None:
        return self.steps[-1] if self.steps else None

    def find_call(self, *, confirmation_id: str | None = None, request_id: str | None = None) -> CallState | None:
        """The call waiting on a confirmation or a question with this id."""
        for step in self.steps:
            for call in step.calls:
                if confirmation_id is not None and call.confirmation_of(confirmation_id) is not None:
                    return call
                if request_id is not None and call.asked and call.asked.request_id == request_id:
                    return call
        return None


def _step(state: TurnState, number: int) -> Step:
    if state.last_step is None or state.last_step.number != number:
        state.steps.append(Step(number=number))
    return state.steps[-1]


def _call(state: TurnState, call_id: str | None) -> CallState | None:
    for step in reversed(state.steps):
        for call in step.calls:
            if call.call.call_id == call_id:
                return call
    return None


def evolve(state: TurnState, event: AnyEvent) -> TurnState:
    """Apply one of the turn's own events (mutating and returning `state`)."""
    state.version += 1
    match event:
        case TurnStarted():
            state.started = event
        case SkillMatched():
            state.skill = event
        case PhaseChanged(phase=phase):
            state.phase = phase
        case Thinking(step=number, content=content):
            _step(state, number).thought = content
        case ToolCalled(step=number, call_id=call_id, tool=tool, arguments=arguments):
            _step(state, number).calls.append(CallState(call=ToolCall(call_id=call_id, name=tool, arguments=arguments)))
        case ToolStarted(call_id=call_id):
            if (call := _call(state, call_id)) is not None:
                call.attempts += 1
                call.started = event
        case ToolResult(call_id=call_id):
            if (call := _call(state, call_id)) is not None:
                call.result, call.started = event, None
        case ToolOutcomeUnknown(call_id=call_id):
            if (call := _call(state, call_id)) is not None:
                call.unknown, call.started, call.rerun, call.rerun_resolved = event, None, None, None
        case ConfirmationRequested(call_id=call_id):
            if (call := _call(state, call_id)) is not None:
                # Recorded right after an unknown outcome, it asks whether to run the call again.
                if call.unknown is not None:
                    call.rerun = event
                else:
                    call.confirmation = event
        case ConfirmationResolved(confirmation_id=confirmation_id):
            if (call := state.find_call(confirmation_id=confirmation_id)) is not None:
                if call.rerun is not None and call.rerun.confirmation_id == confirmation_id:
                    call.rerun_resolved = event
                else:
                    call.resolved = event
        case HumanAsked(call_id=call_id):
            if (call := _call(state, call_id)) is not None:
                call.asked = event
        case HumanReplied(request_id=request_id):
            if (call := state.find_call(request_id=request_id)) is not None:
                call.replied = event
        case ModelCalled(prompt_tokens=prompt, completion_tokens=completion):
            state.prompt_tokens += prompt
            state.completion_tokens += completion
        case TurnCompleted() | TurnFailed() | TurnCancelled():
            state.outcome = event
    return state
