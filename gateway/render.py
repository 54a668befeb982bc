"""Render feed items (persisted events and live frames) as WebSocket frames."""

from __future__ import annotations

import msgspec

from schemas import CommandRefused, FeedItem, RecordedEvent, TeamInterventionAck, Token, tag_of
from schemas.events import (
    AssistantMessage,
    BoardFailed,
    BoardStarted,
    HumanAsked,
    TeamDissolved,
    Thinking,
    TurnCancelled,
    TurnCompleted,
    TurnFailed,
)
from schemas.quotas import QuotaInfo
from schemas.texts import ENGLISH, Texts

from .protocol import ErrorData, ResultData, ServerFrame, StepData, TeamEndedData, error_frame, raw

# Turn events that the seed shows as a ReAct `step`; the others keep their own name.
_STEP_EVENTS = frozenset({"turn_started", "tool_called", "tool_result", "turn_completed", "human_replied"})
# The step's `event_type` as the seed's ReAct engine named it, where ours differs.
_SEED_STEP_NAMES = {"tool_called": "tool_call"}
_SEED_NAMES = {
    "skill_matched": "skill_match",
    "human_asked": "ask_human",
    "confirmation_requested": "confirmation_request",
    "confirmation_resolved": "confirmation_result",
}


def render(item: FeedItem, texts: Texts = ENGLISH) -> ServerFrame:
    """Turn one feed item into the frame a client receives (its texts in the session's language)."""
    match item:
        case RecordedEvent():
            return _render_event(item, texts)
        case Token(turn_id=turn_id, content=content):
            # `data.segment` says which attempt the token belongs to (a `token_reset` discards one).
            return ServerFrame(type="token", content=content, turn_id=turn_id, data=raw(item))
        case CommandRefused(code="nothing_to_cancel"):
            # The seed answered every cancel with `result`, also when nothing was running.
            return ServerFrame(type="result", data=raw(ResultData(status="cancelled")))
        case CommandRefused(code=code, message=message):
            return error_frame(message, code)
        case TeamInterventionAck():
            return ServerFrame(type="team_intervention_ack", data=raw(item))
        case _:
            return ServerFrame(type=tag_of(type(item)), data=raw(item))


def _render_event(recorded: RecordedEvent, texts: Texts) -> ServerFrame:
    event = recorded.event
    name = tag_of(type(event))
    position = recorded.position
    match event:
        case AssistantMessage(content=content, turn_id=turn_id):
            return ServerFrame(
                type="final_answer", position=position, content=content, is_final=True, turn_id=turn_id, data=raw(event)
            )
        case TurnFailed(message=message, code=code, quota_info=quota_info):
            failed = ErrorData(message=message, code=code, quota_info=quota_info)
            return ServerFrame(type="error", position=position, turn_id=event.turn_id, data=raw(failed))
        case TurnCompleted(error=error) if error is not None:
            # The emergency tier answered: the apology follows as final_answer, the error comes first.
            message = "; ".join([error.message, *error.failures])
            return ServerFrame(
                type="error",
                position=position,
                turn_id=event.turn_id,
                data=raw(ErrorData(message=message, code=error.code)),
            )
        case TurnCancelled(turn_id=turn_id):
            return ServerFrame(
                type="result",
                position=position,
                turn_id=turn_id,
                data=raw(ResultData(status="cancelled", turn_id=turn_id)),
            )
        case Thinking(turn_id=turn_id, content=content):
            return ServerFrame(type="thinking", position=position, content=content, turn_id=turn_id, data=raw(event))
        case BoardFailed(board_id=board_id, cancelled=True):
            return ServerFrame(
                type="result", position=position, data=raw(ResultData(status="cancelled", board_id=board_id))
            )
        case BoardFailed(reason=reason, quota_info=QuotaInfo() as quota_info):
            # The seed's frame: `quota exceeded` with the quota.
            failed = ErrorData(message=reason, code="quota_exceeded", quota_info=quota_info)
            return ServerFrame(type="error", position=position, data=raw(failed))
        case BoardFailed(reason=reason):
            return ServerFrame(
                type="error",
                position=position,
                data=raw(ErrorData(message=texts.board_ended.format(reason=reason), code="board_failed")),
            )
        case BoardStarted():
            # The seed's board_started named the board `team_id`; both names are kept.
            fields = {**msgspec.structs.asdict(event), "team_id": event.board_id}
            return ServerFrame(type=name, position=position, data=raw(_with_tag(name, fields)))
        case HumanAsked(question=question, request_id=request_id):
            return ServerFrame(
                type="ask_human",
                position=position,
                turn_id=event.turn_id,
                question=question,
                request_id=request_id,
                data=raw(event),
            )
        case TeamDissolved(status="cancelled" | "failed" as status, reason=reason, quota_info=quota_info):
            # The seed told a cancelled or failed team with an error frame; `data` keeps the event's fields too.
            ended = TeamEndedData(
                message=(texts.team_cancelled if status == "cancelled" else texts.team_failed).format(reason=reason),
                code=f"team_{status}",
                team_id=event.team_id,
                status=status,
                reason=reason,
            )
            if quota_info is not None:  # the seed's frame: `quota exceeded` with the quota
                ended = msgspec.structs.replace(ended, message=reason, code="quota_exceeded", quota_info=quota_info)
            return ServerFrame(type="error", position=position, data=raw(ended))
    if name in _STEP_EVENTS:
        step = getattr(event, "step", 0)
        data = StepData(event_type=_SEED_STEP_NAMES.get(name, name), step=step, data=raw(event))
        return ServerFrame(type="step", position=position, turn_id=getattr(event, "turn_id", None), data=raw(data))
    return ServerFrame(type=_SEED_NAMES.get(name, name), position=position, data=raw(event))


def _with_tag(name: str, fields: dict[str, object]) -> dict[str, object]:
    """An event's fields as its JSON carries them (the `type` tag first), for a frame that adds a field."""
    return {"type": name, **fields}
