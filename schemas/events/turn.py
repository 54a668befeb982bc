"""Events of an agent turn (`turn-<turn_id>`): one ReAct run answering one message."""

from __future__ import annotations

from .._base import Event
from ..commands import ExecutionMode


class TurnStarted(Event, frozen=True, kw_only=True):
    """An agent began answering the user message `user_message_id`."""

    turn_id: str
    user_message_id: str
    agent_name: str
    model: str
    execution_mode: ExecutionMode = "react"


class SkillMatched(Event, frozen=True, kw_only=True):
    """An `@skill` prefix (or a matcher) chose a skill for the turn."""

    turn_id: str
    skill: str
    method: str
    confidence: float = 1.0


class Thinking(Event, frozen=True, kw_only=True):
    """The agent's reasoning text before acting."""

    turn_id: str
    step: int
    content: str


class ToolCalled(Event, frozen=True, kw_only=True):
    """The agent called a tool; `arguments` is the JSON text the model produced."""

    turn_id: str
    step: int
    call_id: str
    tool: str
    arguments: str


class ToolResult(Event, frozen=True, kw_only=True):
    """A tool call finished (or failed, with `is_error`)."""

    turn_id: str
    step: int
    call_id: str
    tool: str
    content: str
    is_error: bool = False


class ConfirmationRequested(Event, frozen=True, kw_only=True):
    """A tool needs the user's approval before it runs."""

    turn_id: str
    confirmation_id: str
    command: str
    reason: str


class ConfirmationResolved(Event, frozen=True, kw_only=True):
    """The user approved or denied (a timeout counts as denied)."""

    turn_id: str
    confirmation_id: str
    approved: bool
    timed_out: bool = False


class HumanAsked(Event, frozen=True, kw_only=True):
    """The agent asked the user a question (`ask_human`)."""

    turn_id: str
    request_id: str
    question: str


class HumanReplied(Event, frozen=True, kw_only=True):
    """The user answered an `ask_human` question."""

    turn_id: str
    request_id: str
    content: str


class PhaseChanged(Event, frozen=True, kw_only=True):
    """A `plan_exec` turn moved from one phase to the next."""

    turn_id: str
    phase: str | None
    previous: str | None


class PhaseViolation(Event, frozen=True, kw_only=True):
    """A tool forbidden in the current phase was called."""

    turn_id: str
    phase: str
    tool: str
    message: str


class TurnCompleted(Event, frozen=True, kw_only=True):
    """The turn produced its final answer; `tier` says which provider answered."""

    turn_id: str
    content: str
    tier: str = "main"
    prompt_tokens: int = 0
    completion_tokens: int = 0


class TurnFailed(Event, frozen=True, kw_only=True):
    """The turn ended without an answer."""

    turn_id: str
    message: str
    code: str = "turn_failed"


class TurnCancelled(Event, frozen=True, kw_only=True):
    """The user cancelled the turn."""

    turn_id: str


TurnEvent = (
    TurnStarted
    | SkillMatched
    | Thinking
    | ToolCalled
    | ToolResult
    | ConfirmationRequested
    | ConfirmationResolved
    | HumanAsked
    | HumanReplied
    | PhaseChanged
    | PhaseViolation
    | TurnCompleted
    | TurnFailed
    | TurnCancelled
)
