"""A board meeting rebuilt from its stream alone: the pure fold behind replay and `GET /boards/{id}`.

`fold` never calls an LLM, NATS or the database: give it the recorded events of
`board-<board_id>` (in log order) and it returns the discussion as it stood
after the last of them. It is total: any sequence of board events, even one no
board actor would write (a speech before the start, rounds out of order),
gives a view, with every event shown once and in log order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import msgspec

from schemas import tag_of
from schemas.envelope import RecordedEvent
from schemas.events import (
    BoardConcluded,
    BoardFailed,
    BoardStarted,
    ExpertProfile,
    ExpertSpeech,
    RoundSummary,
    UserIntervention,
)

BoardStatus = Literal["unknown", "running", "concluded", "failed", "cancelled"]


class SpeechView(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    expert_name: str
    expert_avatar: str
    expert_color: str
    role: str
    content: str


class SummaryView(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    moderator_name: str
    content: str
    consensus: bool


class InterventionView(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    content: str


class RoundView(msgspec.Struct, kw_only=True):
    """One round: its speeches and interventions in log order, then the moderator's summary."""

    round: int
    speeches: list[SpeechView] = []
    interventions: list[InterventionView] = []
    summaries: list[SummaryView] = []


class ConclusionView(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    summary: str
    decision_advice: str
    consensus_points: list[str]
    dissent_points: list[str]
    total_rounds: int


class TimelineEntry(msgspec.Struct, frozen=True, kw_only=True):
    """Every event of the board, in log order, by type: the order-preserving skeleton of the view."""

    position: int
    type: str
    round: int | None = None


class UsageView(msgspec.Struct, frozen=True, kw_only=True):
    """What the meeting's model calls took, summed; `truncated`: how many answers were cut at their limit."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: int = 0


class BoardView(msgspec.Struct, kw_only=True):
    """A board meeting as replay and the REST API show it (`position`: the last event folded in)."""

    board_id: str
    session_id: str | None = None
    status: BoardStatus = "unknown"
    topic: str = ""
    experts: list[ExpertProfile] = []
    max_rounds: int = 0
    rounds: list[RoundView] = []
    conclusion: ConclusionView | None = None
    failure: str | None = None
    position: int = 0
    timeline: list[TimelineEntry] = []
    usage: UsageView = UsageView()


def fold(board_id: str, recorded: Iterable[RecordedEvent], *, at: int | None = None) -> BoardView:
    """Fold the board's events into a view; with `at`, only those at or before that position."""
    view = BoardView(board_id=board_id)
    for item in recorded:
        if at is not None and item.position > at:
            break
        apply(view, item)
    return view


def apply(view: BoardView, recorded: RecordedEvent) -> BoardView:
    """Fold one more recorded event into `view` (mutating and returning it); non-board events are ignored."""
    event = recorded.event
    position = recorded.position
    round_number: int | None = None
    match event:
        case BoardStarted():
            view.topic, view.experts, view.max_rounds = event.topic, list(event.experts), event.max_rounds
            if view.status == "unknown":
                view.status = "running"
        case ExpertSpeech():
            round_number = event.round
            _round(view, event.round).speeches.append(
                SpeechView(
                    position=position,
                    expert_name=event.expert_name,
                    expert_avatar=event.expert_avatar,
                    expert_color=event.expert_color,
                    role=event.role,
                    content=event.content,
                )
            )
        case RoundSummary():
            round_number = event.round
            _round(view, event.round).summaries.append(
                SummaryView(
                    position=position,
                    moderator_name=event.moderator_name,
                    content=event.content,
                    consensus=event.consensus,
                )
            )
        case UserIntervention():
            # An intervention belongs to the round it interrupted: the latest one still open.
            round_number = _open_round(view)
            _round(view, round_number).interventions.append(InterventionView(position=position, content=event.content))
        case BoardConcluded():
            view.conclusion = ConclusionView(
                position=position,
                summary=event.summary,
                decision_advice=event.decision_advice,
                consensus_points=list(event.consensus_points),
                dissent_points=list(event.dissent_points),
                total_rounds=event.total_rounds,
            )
            view.status = "concluded"
        case BoardFailed():
            view.failure = event.reason
            view.status = "cancelled" if event.cancelled else "failed"
        case _:
            return view
    if isinstance(event, ExpertSpeech | RoundSummary | BoardConcluded):
        used = view.usage
        view.usage = UsageView(
            calls=used.calls + 1,
            prompt_tokens=used.prompt_tokens + event.prompt_tokens,
            completion_tokens=used.completion_tokens + event.completion_tokens,
            truncated=used.truncated + event.truncated,
        )
    view.session_id = view.session_id or recorded.session_id
    view.position = position
    view.timeline.append(TimelineEntry(position=position, type=tag_of(type(event)), round=round_number))
    return view


def _round(view: BoardView, number: int) -> RoundView:
    for existing in view.rounds:
        if existing.round == number:
            return existing
    created = RoundView(round=number)
    view.rounds.append(created)
    return created


def _open_round(view: BoardView) -> int:
    if not view.rounds:
        return 1
    last = view.rounds[-1]
    return last.round + 1 if last.summaries else last.round
