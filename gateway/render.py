"""Render feed items (persisted events and live frames) as WebSocket frames."""

from __future__ import annotations

from schemas import CommandRefused, FeedItem, RecordedEvent, TeamInterventionAck, Token, tag_of
from schemas.events import AssistantMessage, TurnFailed

from .protocol import ErrorData, ServerFrame, StepData, error_frame, raw

# Turn events that the seed shows as a ReAct `step`; the others keep their own name.
_STEP_EVENTS = frozenset(
    {"turn_started", "tool_called", "tool_result", "turn_completed", "human_replied", "confirmation_resolved"}
)
_SEED_NAMES = {
    "skill_matched": "skill_match",
    "human_asked": "ask_human",
    "confirmation_requested": "confirmation_request",
    "turn_cancelled": "result",
}


def render(item: FeedItem) -> ServerFrame:
    """Turn one feed item into the frame a client receives."""
    match item:
        case RecordedEvent():
            return _render_event(item)
        case Token(turn_id=turn_id, content=content):
            return ServerFrame(type="token", content=content, turn_id=turn_id)
        case CommandRefused(code=code, message=message):
            return error_frame(message, code)
        case TeamInterventionAck():
            return ServerFrame(type="team_intervention_ack", data=raw(item))
        case _:
            return ServerFrame(type=tag_of(type(item)), data=raw(item))


def _render_event(recorded: RecordedEvent) -> ServerFrame:
    event = recorded.event
    name = tag_of(type(event))
    position = recorded.position
    match event:
        case AssistantMessage(content=content, turn_id=turn_id):
            return ServerFrame(type="final_answer", position=position, content=content, is_final=True, turn_id=turn_id, data=raw(event))
        case TurnFailed(message=message, code=code):
            return ServerFrame(type="error", position=position, turn_id=event.turn_id, data=raw(ErrorData(message=message, code=code)))
    if name in _STEP_EVENTS:
        step = getattr(event, "step", 0)
        data = StepData(event_type=name, step=step, data=raw(event))
        return ServerFrame(type="step", position=position, turn_id=getattr(event, "turn_id", None), data=raw(data))
    return ServerFrame(type=_SEED_NAMES.get(name, name), position=position, data=raw(event))
