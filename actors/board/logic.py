"""The board actor's logic as pure functions: `evolve` folds its events, `decide` judges, `next_step` plans.

A board's whole progress is in its events, so `next_step` of a re-activated
board names the first step not yet recorded: after a crash in round 2 the
meeting continues with the next speaker of round 2, and nothing recorded is
said again.
"""

from __future__ import annotations

import msgspec

from schemas.events import (
    AnyEvent,
    BoardConcluded,
    BoardFailed,
    BoardStarted,
    ExpertProfile,
    ExpertSpeech,
    RoundSummary,
    UserIntervention,
)
from schemas.experts import TranscriptEntry
from schemas.texts import ENGLISH, Texts


class BoardState(msgspec.Struct, kw_only=True):
    """What a board's own events say about it. Mutable: `evolve` updates it in place."""

    board_id: str
    version: int = 0
    started: BoardStarted | None = None
    transcript: list[TranscriptEntry] = []
    spoken: dict[int, list[str]] = {}
    """round -> names of the experts whose speech is recorded, in order"""
    summaries: list[RoundSummary] = []
    intervention_keys: set[str] = set()
    outcome: BoardConcluded | BoardFailed | None = None

    @property
    def running(self) -> bool:
        return self.started is not None and self.outcome is None

    @property
    def speakers(self) -> list[ExpertProfile]:
        """The experts who speak each round, in speaking order."""
        return [e for e in self.started.experts if not e.is_moderator] if self.started else []

    @property
    def moderator(self) -> ExpertProfile:
        """The expert who summarizes and concludes (the first speaker when none is flagged)."""
        assert self.started is not None, "a board has a moderator once started"
        experts = self.started.experts
        return next((e for e in experts if e.is_moderator), experts[0])


def evolve(state: BoardState, event: AnyEvent) -> BoardState:
    """Apply one of the board's own events (mutating and returning `state`)."""
    state.version += 1
    match event:
        case BoardStarted():
            state.started = event
        case ExpertSpeech():
            state.spoken.setdefault(event.round, []).append(event.expert_name)
            state.transcript.append(
                TranscriptEntry(kind="speech", round=event.round, speaker=event.expert_name, content=event.content)
            )
        case RoundSummary():
            state.summaries.append(event)
            state.transcript.append(
                TranscriptEntry(kind="summary", round=event.round, speaker=event.moderator_name, content=event.content)
            )
        case UserIntervention():
            if event.idempotency_key:
                state.intervention_keys.add(event.idempotency_key)
            state.transcript.append(
                TranscriptEntry(kind="intervention", round=current_round(state), speaker="user", content=event.content)
            )
        case BoardConcluded() | BoardFailed():
            state.outcome = event
    return state


def current_round(state: BoardState) -> int:
    """The round being held: one past the last summarized round."""
    return len(state.summaries) + 1


class SpeakStep(msgspec.Struct, frozen=True, kw_only=True):
    round: int
    expert: ExpertProfile


class SummarizeStep(msgspec.Struct, frozen=True, kw_only=True):
    round: int


class ConcludeStep(msgspec.Struct, frozen=True, kw_only=True):
    total_rounds: int


class Finished(msgspec.Struct, frozen=True, kw_only=True):
    """Nothing left to do (concluded, failed or cancelled, or never started)."""


NextStep = SpeakStep | SummarizeStep | ConcludeStep | Finished


def next_step(state: BoardState) -> NextStep:
    """Return the first step of the meeting that is not recorded yet."""
    if not state.running:
        return Finished()
    assert state.started is not None
    last = state.summaries[-1] if state.summaries else None
    if last is not None and (last.consensus or last.round >= state.started.max_rounds):
        return ConcludeStep(total_rounds=last.round)
    round_ = current_round(state)
    spoken = state.spoken.get(round_, [])
    for index, expert in enumerate(state.speakers):
        if index >= len(spoken):
            return SpeakStep(round=round_, expert=expert)
    return SummarizeStep(round=round_)


def step_done_by(state: BoardState, event: AnyEvent) -> bool:
    """Return whether `event` is the outcome of the board's next step (a late or repeated one is not)."""
    match next_step(state), event:
        case SpeakStep(round=r, expert=expert), ExpertSpeech():
            return event.round == r and event.expert_name == expert.name
        case SummarizeStep(round=r), RoundSummary():
            return event.round == r
        case ConcludeStep(), BoardConcluded():
            return True
    return False


def decide_intervention(state: BoardState, content: str, key: str | None) -> list[AnyEvent]:
    """Take a user message into the running board once per idempotency key; [] if it is not running."""
    if not state.running or (key is not None and key in state.intervention_keys):
        return []
    return [UserIntervention(target_id=state.board_id, content=content, idempotency_key=key)]


def decide_cancel(state: BoardState, reason: str = "cancelled by the user") -> list[AnyEvent]:
    """End a running board as cancelled; a board that is not running is left as it is."""
    if not state.running:
        return []
    return [BoardFailed(board_id=state.board_id, reason=reason, cancelled=True)]


def final_answer(concluded: BoardConcluded, texts: Texts = ENGLISH) -> str:
    """The session's answer to the message that started the board: the conclusion in sections, in `texts`' language."""

    def bullets(points: list[str]) -> str:
        return "\n".join(f"- {point}" for point in points) if points else f"- {texts.none}"

    rounds = concluded.total_rounds
    return "\n\n".join(
        [
            f"## {texts.summary}\n\n{concluded.summary}",
            f"## {texts.decision_advice}\n\n{concluded.decision_advice or texts.none}",
            f"## {texts.consensus}\n\n{bullets(concluded.consensus_points)}",
            f"## {texts.dissent}\n\n{bullets(concluded.dissent_points)}",
            texts.one_round if rounds == 1 else texts.rounds.format(rounds=rounds),
        ]
    )
