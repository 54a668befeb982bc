"""Requests a board sends its experts over `<prefix>.actor.expert.<expert_id>`, and their answers.

Every request carries what the expert needs to answer (the topic, the
transcript so far, who it is), so any worker serving the subject can answer
it: experts keep no state between requests.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ._base import Message, Reply
from .codec import Decoder
from .events.board import ExpertProfile
from .replies import ErrorReply


class TranscriptEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One thing said in the meeting so far, in the order it was said."""

    kind: Literal["speech", "summary", "intervention"]
    round: int
    speaker: str
    content: str


class ExpertAsk(Message, frozen=True, kw_only=True):
    """What every request to an expert carries; `expert_id` is the last token of its subject."""

    expert_id: str
    board_id: str
    session_id: str
    expert: ExpertProfile
    model: str
    llm: str = "default"
    """The configured LLM endpoint the expert answers with."""
    topic: str
    round: int
    max_rounds: int
    transcript: list[TranscriptEntry] = []
    """The newest of the discussion that fits the role's prompt budget (the latest summary always among it)."""
    max_tokens: int | None = None
    """The most tokens the answer may have."""
    timeout: float | None = None
    """Seconds the expert may generate; past them its answer is cut, and `truncated`."""


class Speak(ExpertAsk, frozen=True, kw_only=True):
    """Give your speech for `round`; stream it as `expert_speech_chunk` frames on the session's feed."""


class SummarizeRound(ExpertAsk, frozen=True, kw_only=True):
    """As moderator, summarize `round` and say whether the experts reached consensus."""


class Conclude(ExpertAsk, frozen=True, kw_only=True):
    """As moderator, conclude the meeting as JSON (see `actors.board.conclusion`)."""


ExpertRequest = Speak | SummarizeRound | Conclude


class ExpertAnswer(Reply, frozen=True, kw_only=True):
    """The whole text the expert produced, what it cost, and whether it was cut at its limit."""

    content: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: bool = False


ExpertReply = ExpertAnswer | ErrorReply

expert_requests: Decoder[ExpertRequest] = Decoder(ExpertRequest, "expert request")
expert_replies: Decoder[ExpertReply] = Decoder(ExpertReply, "expert reply")
