"""Events of an agent turn (`turn-<turn_id>`): one ReAct run answering one message."""

from __future__ import annotations

from datetime import datetime

import msgspec

from .._base import Event
from ..commands import ExecutionMode
from ..quotas import QuotaInfo


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


class ToolStarted(Event, frozen=True, kw_only=True):
    """A function tool is about to run (recorded before it runs): the effect ledger's entry for the call.

    A start with no `tool_result` after it means the process stopped while the
    tool ran, so whether it had its effect is unknown.
    """

    turn_id: str
    step: int
    call_id: str
    tool: str
    effect_key: str
    """`<turn_id>:<call_id>`, the same for every attempt of the call: the tool (and an MCP server, in the
    request's `_meta`) receives it, so an outside service can carry the effect out once."""
    attempt: int = 1
    idempotent: bool = False
    """What the tool declared when it started: running it again has the effect of running it once."""


class ToolOutcomeUnknown(Event, frozen=True, kw_only=True):
    """A non-idempotent tool's start has no result (the process stopped while it ran): it is not run again
    unless the user says so (the confirmation recorded next)."""

    turn_id: str
    step: int
    call_id: str
    tool: str
    effect_key: str
    attempt: int = 1
    """The attempt whose outcome is unknown."""


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
    call_id: str | None = None
    """The tool call waiting for the approval."""
    expires_at: datetime | None = None
    """When an unanswered request counts as denied (measured from the recorded request, so it survives restarts)."""


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
    call_id: str | None = None
    """The `ask_human` tool call waiting for the answer."""
    expires_at: datetime | None = None
    """When an unanswered question ends with "no answer" as the tool's result."""


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


class FallbackError(msgspec.Struct, frozen=True, kw_only=True):
    """Why no provider answered: the emergency tier's structured error (`error_struct` in REST)."""

    code: str
    message: str
    failures: list[str] = []
    """One line per tier that failed, in the order they were tried."""


class ModelCalled(Event, frozen=True, kw_only=True):
    """One model call of a turn's step: which tier answered, the tokens it took, whether it was cut at its limit."""

    turn_id: str
    step: int
    tier: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: bool = False
    charged_to: list[str] = []
    """The departments whose quotas counted the call (none for an admin, a service or without users)."""


class TurnCompleted(Event, frozen=True, kw_only=True):
    """The turn produced its final answer; `tier` says which provider answered.

    `tier` is `main`, `recovery` (a fallback endpoint) or `emergency` (none
    answered: `content` is an apology and `error` says why).
    """

    turn_id: str
    content: str
    tier: str = "main"
    prompt_tokens: int = 0
    """Summed over every model call of the turn."""
    completion_tokens: int = 0
    """Summed over every model call of the turn."""
    error: FallbackError | None = None
    truncated: bool = False
    """The final answer was cut at its token or time limit."""


class TurnFailed(Event, frozen=True, kw_only=True):
    """The turn ended without an answer."""

    turn_id: str
    message: str
    code: str = "turn_failed"
    quota_info: QuotaInfo | None = None
    """`quota_exceeded` only: the quota the turn's next model call would have gone past (the seed's frame)."""


class TurnCancelled(Event, frozen=True, kw_only=True):
    """The user cancelled the turn."""

    turn_id: str


TurnEvent = (
    TurnStarted
    | SkillMatched
    | Thinking
    | ModelCalled
    | ToolCalled
    | ToolStarted
    | ToolResult
    | ToolOutcomeUnknown
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
