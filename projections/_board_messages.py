"""Board events as history messages, with the metadata a client needs to redraw the meeting.

The `message_type` values and metadata keys are the seed's (`board_started`,
`board_speech`, `board_summary`, `board_conclusion`; `expert_name`,
`board_round`, `board_role`, ...), so a seed-era client renders them as cards.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from schemas.events import AnyEvent, BoardConcluded, BoardStarted, ExpertSpeech, RoundSummary, UserIntervention
from schemas.streams import BOARD_AGENT


class BoardMessage(msgspec.Struct, frozen=True, kw_only=True):
    role: Literal["user", "assistant"]
    content: str
    agent_name: str | None
    metadata: dict[str, Any]


def board_message(event: AnyEvent) -> BoardMessage | None:
    """Return the history message a board event shows as, or None for events history does not show."""
    match event:
        case BoardStarted():
            started = {
                "board_id": event.board_id,
                "team_id": event.board_id,
                "topic": event.topic,
                "experts": msgspec.to_builtins(event.experts),
                "max_rounds": event.max_rounds,
            }
            return _assistant(
                f"Board meeting started: {event.topic}", {"message_type": "board_started", "board_started": started}
            )
        case ExpertSpeech():
            return _assistant(
                event.content,
                {
                    "message_type": "board_speech",
                    "board_id": event.board_id,
                    "expert_name": event.expert_name,
                    "expert_avatar": event.expert_avatar,
                    "expert_color": event.expert_color,
                    "board_round": event.round,
                    "board_role": event.role,
                },
            )
        case RoundSummary():
            return _assistant(
                event.content,
                {
                    "message_type": "board_summary",
                    "board_id": event.board_id,
                    "expert_name": event.moderator_name,
                    "expert_avatar": event.moderator_avatar,
                    "expert_color": event.moderator_color,
                    "board_round": event.round,
                    "board_role": "summary",
                    "consensus": event.consensus,
                },
            )
        case BoardConcluded():
            conclusion = {
                "summary": event.summary,
                "decision_advice": event.decision_advice,
                "total_rounds": event.total_rounds,
                "consensus_points": list(event.consensus_points),
                "dissent_points": list(event.dissent_points),
            }
            return _assistant(
                event.summary or "Board meeting concluded",
                {
                    "message_type": "board_conclusion",
                    "board_id": event.board_id,
                    "board_round": event.total_rounds,
                    "board_conclusion": conclusion,
                },
            )
        case UserIntervention():
            return BoardMessage(
                role="user",
                content=event.content,
                agent_name=None,
                metadata={"message_type": "intervention", "target_id": event.target_id},
            )
    return None


def _assistant(content: str, metadata: dict[str, Any]) -> BoardMessage:
    return BoardMessage(role="assistant", content=content, agent_name=BOARD_AGENT, metadata=metadata)
