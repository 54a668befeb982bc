"""How a session hands `cancel`, `reply` and `confirmation_reply` commands to its turns."""

from __future__ import annotations

from collections.abc import Collection

from schemas import Cancel, ConfirmationReply, HumanReply

from ..runtime.actor import Host
from ..turn.messages import AnswerQuestion, CancelTurn, ResolveConfirmation, turn_of
from .state import Refused

TurnCommand = Cancel | HumanReply | ConfirmationReply


async def route_to_turn(
    host: Host, command: TurnCommand, running: Collection[str], unanswered: Collection[str]
) -> Refused | None:
    """Deliver `command` to the turn it concerns; a refusal says why no turn took it.

    A cancel without `turn_id` cancels every running turn. Replies find their
    turn by the id they answer (`<turn_id>-…`), so they reach it even after
    a restart, when the turn is re-activated from its log.
    """
    match command:
        case Cancel(turn_id=turn_id):
            targets = [turn_id] if turn_id else list(running)
            taken = [
                target for target in targets if target in unanswered and await host.ask("turn", target, CancelTurn())
            ]
            return None if taken else Refused(code="nothing_to_cancel", message="no turn is running")
        case HumanReply(request_id=request_id, content=content):
            turn_id = turn_of(request_id)
            if turn_id in unanswered and await host.ask(
                "turn", turn_id, AnswerQuestion(request_id=request_id, content=content)
            ):
                return None
            return Refused(code="unknown_request", message=f"no question {request_id!r} is waiting for an answer")
        case ConfirmationReply(confirmation_id=confirmation_id, approved=approved):
            turn_id = turn_of(confirmation_id)
            message = ResolveConfirmation(confirmation_id=confirmation_id, approved=approved)
            if turn_id in unanswered and await host.ask("turn", turn_id, message):
                return None
            return Refused(code="unknown_confirmation", message=f"no confirmation {confirmation_id!r} is pending")
