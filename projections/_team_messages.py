"""Team events as history messages, with the metadata a client needs to redraw the pipeline.

What history shows of a team: `team_formed` (the task, the experts and the
first plan), `team_plan_update` (a later plan revision), `team_phase_result`
(each attempt at a phase), `team_review` (the lead's verdict),
`team_phase_failed` and `team_synthesis`; the user's interventions are the
board's shared `intervention` messages. The rest of the stream (steps,
hand-offs, risks, ...) is in `GET /teams/{id}`. Every message's metadata has
`message_type` and `team_id`; their agent name is `TEAM_AGENT`, the one the
team's final answer is recorded under.
"""

from __future__ import annotations

from typing import Any

import msgspec

from schemas.events import AnyEvent, ExpertResult, PhaseFailed, PlanUpdate, ReviewResult, TeamFormed, TeamSynthesis
from schemas.streams import TEAM_AGENT

from ._board_messages import BoardMessage


def needs_phase_name(event: AnyEvent) -> str | None:
    """The phase id whose name the message of `event` shows, when the event itself does not carry the name."""
    return event.phase_id if isinstance(event, ExpertResult | ReviewResult) else None


def team_message(event: AnyEvent, phase_name: str | None = None) -> BoardMessage | None:
    """Return the history message a team event shows as, or None for events history does not show.

    `phase_name` is the name of the phase an `expert_result` or `review_result`
    is about (see `needs_phase_name`), if the caller found it.
    """
    match event:
        case TeamFormed():
            formed = {
                "team_id": event.team_id,
                "task": event.task,
                "status": event.status,
                "lead_expert": event.lead_expert,
                "experts": msgspec.to_builtins(event.experts),
                "plan_phases": msgspec.to_builtins(event.plan_phases),
            }
            return _assistant(
                f"Team formed: {event.task}",
                {"message_type": "team_formed", "team_id": event.team_id, "team_formed": formed},
            )
        case PlanUpdate(revision=revision) if revision > 1:
            return _assistant(
                f"Plan revision {revision}: {event.reason}" if event.reason else f"Plan revision {revision}",
                {
                    "message_type": "team_plan_update",
                    "team_id": event.team_id,
                    "revision": revision,
                    "reason": event.reason,
                    "plan_phases": msgspec.to_builtins(event.plan_phases),
                },
            )
        case ExpertResult():
            return _assistant(
                event.content,
                {
                    "message_type": "team_phase_result",
                    "team_id": event.team_id,
                    "phase_id": event.phase_id,
                    "phase_name": phase_name,
                    "expert_id": event.expert_id,
                    "expert_name": event.expert_name,
                    "expert_color": event.expert_color,
                    "attempt": event.attempt,
                    "truncated": event.truncated,
                },
            )
        case ReviewResult():
            verdict = "Accepted" if event.verdict == "accept" else "Revision requested"
            return _assistant(
                "\n".join([f"{verdict}.", *(f"- {reason}" for reason in event.reasons)]),
                {
                    "message_type": "team_review",
                    "team_id": event.team_id,
                    "phase_id": event.phase_id,
                    "phase_name": phase_name,
                    "reviewer": event.reviewer,
                    "verdict": event.verdict,
                    "reasons": list(event.reasons),
                    "attempt": event.attempt,
                },
            )
        case PhaseFailed():
            return _assistant(
                f"Phase failed: {event.phase_name}: {event.reason}",
                {
                    "message_type": "team_phase_failed",
                    "team_id": event.team_id,
                    "phase_id": event.phase_id,
                    "phase_name": event.phase_name,
                    "reason": event.reason,
                },
            )
        case TeamSynthesis(content=content) if content:
            return _assistant(
                content, {"message_type": "team_synthesis", "team_id": event.team_id, "truncated": event.truncated}
            )
    return None


def _assistant(content: str, metadata: dict[str, Any]) -> BoardMessage:
    return BoardMessage(role="assistant", content=content, agent_name=TEAM_AGENT, metadata=metadata)
