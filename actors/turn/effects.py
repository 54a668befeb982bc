"""The effect ledger of a turn's tool calls: each run recorded as started before it runs, and what a start
without a result means when the turn resumes.

A start with no result after it was cut by a crash (or by an outage that
stopped the driver): whether the tool had its effect is unknown. An idempotent
tool is simply run again, under the same effect key. Any other tool is never run
again silently: the turn records `tool_outcome_unknown` and asks the user, with
a confirmation, whether to run it again or go on without it, and the tool result
the model reads says which.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.events import AnyEvent, ConfirmationRequested, ToolOutcomeUnknown, ToolStarted

from ..llm import ToolCall
from ..tools import Tool
from .state import CallState


def effect_key(turn_id: str, call_id: str) -> str:
    """The call's key for outside services to de-duplicate by: the same for each of its attempts."""
    return f"{turn_id}:{call_id}"


def start(turn_id: str, step: int, pending: CallState, tool: Tool) -> ToolStarted:
    """The ledger entry recorded right before the call's next run."""
    call = pending.call
    return ToolStarted(
        turn_id=turn_id,
        step=step,
        call_id=call.call_id,
        tool=call.name,
        effect_key=effect_key(turn_id, call.call_id),
        attempt=pending.attempts + 1,
        idempotent=tool.idempotent,
    )


def outcome_unknown(
    turn_id: str, index: int, call: ToolCall, started: ToolStarted, now: datetime, timeout: timedelta
) -> list[AnyEvent]:
    """Record that the run `started` (the `index`-th call of its step) has an unknown outcome, and ask the
    user whether to run the call again."""
    step = started.step
    unknown = ToolOutcomeUnknown(
        turn_id=turn_id,
        step=step,
        call_id=call.call_id,
        tool=call.name,
        effect_key=started.effect_key,
        attempt=started.attempt,
    )
    asked = ConfirmationRequested(
        turn_id=turn_id,
        # One per cut attempt: the user may approve a run again that is cut again.
        confirmation_id=f"{turn_id}-u{step}-{index}-{started.attempt}",
        command=f"{call.name} {call.arguments}",
        reason=(
            f"{call.name} was running when agentbus stopped, so it may or may not have had its effect. "
            "Approve to run it again, or deny to go on without it."
        ),
        call_id=call.call_id,
        expires_at=now + timeout,
    )
    return [unknown, asked]


def skipped(pending: CallState) -> str:
    """The tool result of a call whose outcome is unknown and that the user did not have run again."""
    timed_out = pending.rerun_resolved is not None and pending.rerun_resolved.timed_out
    why = "the user did not answer in time" if timed_out else "the user chose to go on without it"
    return (
        f"The outcome of {pending.call.name} is unknown: agentbus stopped while it ran, so it may or may not "
        f"have had its effect. It was not run again ({why}). Do not assume either outcome; "
        "tell the user if it matters."
    )


def settled(pending: CallState, content: str) -> str:
    """The tool result the model reads: after an unknown outcome, it says the user had the call run again."""
    if pending.unknown is None or pending.rerun_resolved is None or not pending.rerun_resolved.approved:
        return content
    return (
        f"(An earlier run of {pending.call.name} was cut when agentbus stopped, so its outcome is unknown; "
        f"the user chose to run it again.) {content}"
    )
