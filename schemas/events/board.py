"""Events of a board meeting (`board-<board_id>`): experts debate a topic over rounds."""

from __future__ import annotations

import msgspec

from .._base import Event
from ..quotas import QuotaInfo


class ExpertProfile(msgspec.Struct, frozen=True, kw_only=True):
    """Who an expert is, as a client draws it."""

    name: str
    avatar: str = ""
    color: str = ""
    persona: str = ""
    is_moderator: bool = False


class BoardStarted(Event, frozen=True, kw_only=True):
    """A board meeting opened on a topic with these experts."""

    board_id: str
    topic: str
    experts: list[ExpertProfile]
    max_rounds: int


class ExpertSpeech(Event, frozen=True, kw_only=True):
    """One expert's whole speech in a round."""

    board_id: str
    round: int
    expert_name: str
    expert_avatar: str = ""
    expert_color: str = ""
    role: str = "expert"
    content: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: bool = False
    """The model's answer was cut at its token or time limit (`[limits]` in the config)."""
    charged_to: list[str] = []
    """The departments whose quotas counted the call (none for an admin, a service or without users)."""


class RoundSummary(Event, frozen=True, kw_only=True):
    """The moderator's summary of a round; `consensus` ends the meeting early."""

    board_id: str
    round: int
    moderator_name: str
    moderator_avatar: str = ""
    moderator_color: str = ""
    content: str
    consensus: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: bool = False
    """The model's answer was cut at its token or time limit (`[limits]` in the config)."""
    charged_to: list[str] = []
    """The departments whose quotas counted the call (none for an admin, a service or without users)."""


class UserIntervention(Event, frozen=True, kw_only=True):
    """The user spoke while a board or team was running (`target_id` is its id).

    `idempotency_key` is the key of the user's command, so a retried command
    is taken once.
    """

    target_id: str
    content: str
    idempotency_key: str | None = None


class BoardConcluded(Event, frozen=True, kw_only=True):
    """The moderator's conclusion."""

    board_id: str
    summary: str
    decision_advice: str = ""
    consensus_points: list[str] = []
    dissent_points: list[str] = []
    total_rounds: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: bool = False
    """The model's answer was cut at its token or time limit (`[limits]` in the config)."""
    charged_to: list[str] = []
    """The departments whose quotas counted the call (none for an admin, a service or without users)."""


class BoardFailed(Event, frozen=True, kw_only=True):
    """The meeting ended without a conclusion (an error, or `cancelled`)."""

    board_id: str
    reason: str
    cancelled: bool = False
    quota_info: QuotaInfo | None = None
    """A board that failed because a model call was over quota: which quota (the seed's `quota exceeded` frame)."""


BoardEvent = BoardStarted | ExpertSpeech | RoundSummary | UserIntervention | BoardConcluded | BoardFailed
