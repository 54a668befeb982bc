"""Replay for operators: boards, teams and session outlines read from the event log alone.

Only the database is needed (no NATS, no LLM): `agentbus replay` and the
gateway's `GET /boards/{id}` and `GET /teams/{id}` call these.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from schemas import RecordedEvent, tag_of
from schemas.events import ErasureReason, SessionErased, StreamErased, TurnStarted
from schemas.streams import board_stream, team_stream

from ._team_markdown import team_markdown
from .boards import BoardStatus, BoardView, apply, fold
from .eventlog import EventLog
from .teams import TeamView, TeamViewStatus
from .teams import apply as apply_team
from .teams import fold as fold_team

__all__ = [
    "BoardOutline",
    "ErasureOutline",
    "SessionOutline",
    "TeamOutline",
    "TurnOutline",
    "board_markdown",
    "load_board",
    "load_team",
    "session_outline",
    "team_markdown",
]

TurnStatus = Literal["running", "completed", "failed", "cancelled"]

_TURN_ENDS: dict[str, TurnStatus] = {
    "turn_completed": "completed",
    "turn_failed": "failed",
    "turn_cancelled": "cancelled",
}


def _kept(recorded: RecordedEvent) -> bool:
    """Whether an event is the actor's own, not the tombstone of an erased session's stream (none is left before it)."""
    return not isinstance(recorded.event, StreamErased)


async def load_board(event_log: EventLog, board_id: str, *, at: int | None = None) -> BoardView | None:
    """Rebuild a board from its stream (as it stood at position `at`, if given); None if it has no events."""
    events = [recorded async for recorded in event_log.iter_stream(board_stream(board_id)) if _kept(recorded)]
    if not events:
        return None
    return fold(board_id, events, at=at)


async def load_team(event_log: EventLog, team_id: str, *, at: int | None = None) -> TeamView | None:
    """Rebuild a team from its stream (as it stood at position `at`, if given); None if it has no events."""
    events = [recorded async for recorded in event_log.iter_stream(team_stream(team_id)) if _kept(recorded)]
    if not events:
        return None
    return fold_team(team_id, events, at=at)


class BoardOutline(msgspec.Struct, frozen=True, kw_only=True):
    board_id: str
    status: BoardStatus
    topic: str
    rounds: int
    speeches: int
    first_position: int


class TeamOutline(msgspec.Struct, frozen=True, kw_only=True):
    """A team of the session: `phases` in its current plan, `completed` of them done."""

    team_id: str
    status: TeamViewStatus
    task: str
    phases: int
    completed: int
    first_position: int


class TurnOutline(msgspec.Struct, frozen=True, kw_only=True):
    turn_id: str
    status: TurnStatus
    user_message_id: str | None
    events: int
    first_position: int


class ErasureOutline(msgspec.Struct, frozen=True, kw_only=True):
    """One erasure of the session: its tombstone, all that is left of what came before it."""

    position: int
    recorded_at: datetime
    erased_by: str
    reason: ErasureReason
    events_erased: int


class SessionOutline(msgspec.Struct, frozen=True, kw_only=True):
    """The boards, turns and teams of one session, each in the order it started, and its erasures."""

    session_id: str
    boards: list[BoardOutline]
    turns: list[TurnOutline]
    teams: list[TeamOutline] = []
    erasures: list[ErasureOutline] = []


class _Turn(msgspec.Struct, kw_only=True):
    first_position: int
    events: int = 0
    status: TurnStatus = "running"
    user_message_id: str | None = None


async def session_outline(event_log: EventLog, session_id: str) -> SessionOutline:
    """List the session's boards, turns and teams from its events (one pass, one page in memory at a time)."""
    boards: dict[str, tuple[int, BoardView]] = {}
    teams: dict[str, tuple[int, TeamView]] = {}
    turns: dict[str, _Turn] = {}
    erasures: list[ErasureOutline] = []
    async for recorded in event_log.iter_session(session_id):
        kind, _, actor_id = recorded.stream.partition("-")
        if not _kept(recorded):
            continue
        if isinstance(erased := recorded.event, SessionErased):
            erasures.append(
                ErasureOutline(
                    position=recorded.position,
                    recorded_at=recorded.recorded_at,
                    erased_by=erased.erased_by,
                    reason=erased.reason,
                    events_erased=erased.events_erased,
                )
            )
        elif kind == "board":
            _, view = boards.setdefault(actor_id, (recorded.position, BoardView(board_id=actor_id)))
            apply(view, recorded)
        elif kind == "team":
            _, team = teams.setdefault(actor_id, (recorded.position, TeamView(team_id=actor_id)))
            apply_team(team, recorded)
        elif kind == "turn":
            turn = turns.setdefault(actor_id, _Turn(first_position=recorded.position))
            turn.events += 1
            turn.status = _TURN_ENDS.get(tag_of(type(recorded.event)), turn.status)
            if isinstance(recorded.event, TurnStarted):
                turn.user_message_id = recorded.event.user_message_id
    return SessionOutline(
        session_id=session_id,
        boards=[
            BoardOutline(
                board_id=board_id,
                status=view.status,
                topic=view.topic,
                rounds=len(view.rounds),
                speeches=sum(len(r.speeches) for r in view.rounds),
                first_position=first,
            )
            for board_id, (first, view) in boards.items()
        ],
        turns=[
            TurnOutline(
                turn_id=turn_id,
                status=turn.status,
                user_message_id=turn.user_message_id,
                events=turn.events,
                first_position=turn.first_position,
            )
            for turn_id, turn in turns.items()
        ],
        teams=[
            TeamOutline(
                team_id=team_id,
                status=team.status,
                task=team.task,
                phases=len(team.plan),
                completed=sum(phase.status == "completed" for phase in team.plan),
                first_position=first,
            )
            for team_id, (first, team) in teams.items()
        ],
        erasures=erasures,
    )


def board_markdown(view: BoardView) -> str:
    """Render a board as Markdown: topic, experts, each round's speeches, interventions and summary, the conclusion."""
    lines = [f"# Board meeting {view.board_id}", "", f"**Topic:** {view.topic or '(not started)'}"]
    lines += [
        f"**Status:** {view.status} · up to position {view.position} · max rounds {view.max_rounds}",
        "",
        "## Experts",
        "",
    ]
    for expert in view.experts:
        role = " (moderator)" if expert.is_moderator else ""
        avatar = f"{expert.avatar} " if expert.avatar else ""
        lines.append(f"- {avatar}**{expert.name}**{role}: {expert.persona}")
    for round_ in view.rounds:
        lines += ["", f"## Round {round_.round}"]
        said = [(s.position, f"### {s.expert_name}\n\n{s.content}") for s in round_.speeches]
        said += [(i.position, f"> **User intervention:** {i.content}") for i in round_.interventions]
        said += [
            (s.position, f"### Summary ({s.moderator_name}){' — consensus' if s.consensus else ''}\n\n{s.content}")
            for s in round_.summaries
        ]
        for _, text in sorted(said):
            lines += ["", text]
    if view.conclusion is not None:
        c = view.conclusion
        lines += ["", "## Conclusion", "", c.summary, "", "### Decision advice", "", c.decision_advice or "(none)"]
        lines += ["", "### Consensus", "", *(f"- {p}" for p in c.consensus_points or ["(none)"])]
        lines += ["", "### Dissent", "", *(f"- {p}" for p in c.dissent_points or ["(none)"])]
        lines += ["", f"_{c.total_rounds} round{'s' if c.total_rounds != 1 else ''} of discussion_"]
    if view.failure is not None:
        lines += ["", f"**Ended without a conclusion ({view.status}):** {view.failure}"]
    return "\n".join(lines) + "\n"
