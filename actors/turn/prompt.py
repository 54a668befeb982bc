"""What a turn's next model call sees: the system prompt, the history that fits, every recorded step."""

from __future__ import annotations

from ..llm import LLMMessage
from ..llm.budget import estimate_tokens, newest_that_fit
from .phases import PhasePolicy
from .setup import TurnSetup
from .state import TurnState


def conversation(
    state: TurnState, setup: TurnSetup, history: list[LLMMessage], phases: PhasePolicy, budget: int
) -> tuple[str, list[LLMMessage]]:
    """The system prompt and messages for the next model call: the history, then every recorded step.

    Of the history, the newest messages that fit `budget` tokens are sent (the
    message being answered always is).
    """
    system = setup.system_prompt
    if setup.execution_mode == "plan_exec" and state.phase is not None:
        system = f"{system}\n\n{phases.describe(state.phase)}"
    left = budget - estimate_tokens(system)
    messages = newest_that_fit(
        history, left, lambda message: estimate_tokens(message.content), always=frozenset({len(history) - 1})
    )
    if messages and messages[-1].role == "user":
        # The model sees the message without its @skill: prefix.
        messages[-1] = LLMMessage(role="user", content=setup.content)
    for step in state.steps:
        messages.append(LLMMessage(role="assistant", content=step.thought, tool_calls=[c.call for c in step.calls]))
        for call in step.calls:
            if call.result is not None:
                text = f"error: {call.result.content}" if call.result.is_error else call.result.content
                messages.append(LLMMessage(role="tool", content=text, tool_call_id=call.call.call_id))
    return system, messages
