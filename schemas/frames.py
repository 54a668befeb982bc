"""Frames: ephemeral live-only messages on a session's feed, never persisted.

Persisting every streamed chunk would explode history; the whole text is
persisted once, as an event, when the chunk stream ends.
"""

from __future__ import annotations

from ._base import Frame


class Token(Frame, frozen=True, kw_only=True):
    """A streamed piece of an agent's answer; `segment` names the attempt it belongs to."""

    turn_id: str
    content: str
    segment: str = ""


class TokenReset(Frame, frozen=True, kw_only=True):
    """Discard the tokens of `segment`: that attempt failed over to another model, or became a tool call."""

    turn_id: str
    segment: str


class ExpertSpeechChunk(Frame, frozen=True, kw_only=True):
    """A streamed piece of a board expert's speech."""

    board_id: str
    round: int
    expert_name: str
    content: str
    segment: str = ""


class ExpertSpeechChunkReset(Frame, frozen=True, kw_only=True):
    """Discard the chunks of `segment`: the expert's attempt failed and the board asks again.

    An empty `segment` discards every chunk of that speech: the board resumed
    (after a restart, or on another worker) and asks for the speech anew.
    """

    board_id: str
    round: int
    expert_name: str
    segment: str


class ExpertResultChunk(Frame, frozen=True, kw_only=True):
    """A streamed piece of a team member's phase result."""

    team_id: str
    phase_id: str
    expert_name: str
    content: str
    segment: str = ""


class ExpertResultChunkReset(Frame, frozen=True, kw_only=True):
    """Discard the chunks of `segment`: that attempt at the phase failed or was interrupted, and starts over."""

    team_id: str
    phase_id: str
    expert_name: str
    segment: str


class TeamSynthesisChunk(Frame, frozen=True, kw_only=True):
    """A streamed piece of the lead's synthesis."""

    team_id: str
    content: str
    segment: str = ""


class TeamSynthesisChunkReset(Frame, frozen=True, kw_only=True):
    """Discard the synthesis chunks of `segment`: that attempt failed or was interrupted, and starts over."""

    team_id: str
    segment: str


class TeamInterventionAck(Frame, frozen=True, kw_only=True):
    """A user message was taken as an intervention into a running board or team."""

    target_id: str
    content: str


class CommandRefused(Frame, frozen=True, kw_only=True):
    """A session command was refused; `code` is stable, `message` human."""

    code: str
    message: str
    idempotency_key: str | None = None


class EventOmitted(Frame, frozen=True, kw_only=True):
    """An event too big for the live subject was recorded at `position`: read it from the log.

    The relay publishes this in place of the event, so a subscriber misses
    nothing: it fetches that one event (e.g. `read_session(sid, after=position - 1, limit=1)`).
    """

    position: int
    stream: str
    event_type: str
    reason: str


AnyFrame = (
    Token
    | TokenReset
    | ExpertSpeechChunk
    | ExpertSpeechChunkReset
    | ExpertResultChunk
    | ExpertResultChunkReset
    | TeamSynthesisChunk
    | TeamSynthesisChunkReset
    | TeamInterventionAck
    | CommandRefused
    | EventOmitted
)
