"""Requests boards and teams send their experts over `<prefix>.actor.expert.<expert_id>`, and the answers.

Every request carries what the expert needs to answer (the topic or task, the
discussion or the phase results so far, who it is), so any worker serving the
subject can answer it: experts keep no state between requests.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ._base import Message, Reply
from .codec import Decoder
from .events.board import ExpertProfile
from .events.team import PlanPhase, TeamExpert
from .principal import Principal
from .replies import ErrorReply


def expert_id(owner_id: str, name: str) -> str:
    """The id (and subject token) of the expert `name` of one board or team."""
    return f"{owner_id}-{name}"


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
    segment: str = ""
    """The segment id of a speech's chunks, so the board can reset them if the expert's worker dies."""
    call_id: str = ""
    """Where the expert reports it is still working (`ExpertWorking`); empty: no reports."""
    principal: Principal | None = None
    """Whose quotas the expert's model call counts against (who asked for the board); None: nobody's."""


class Speak(ExpertAsk, frozen=True, kw_only=True):
    """Give your speech for `round`; stream it as `expert_speech_chunk` frames on the session's feed."""


class SummarizeRound(ExpertAsk, frozen=True, kw_only=True):
    """As moderator, summarize `round` and say whether the experts reached consensus."""


class Conclude(ExpertAsk, frozen=True, kw_only=True):
    """As moderator, conclude the meeting as JSON (see `actors.board.conclusion`)."""


BoardRequest = Speak | SummarizeRound | Conclude


class PhaseOutput(msgspec.Struct, frozen=True, kw_only=True):
    """What a phase has produced so far, as a request carries it (`content` bounded by the role's budget)."""

    phase_id: str
    phase_name: str
    expert_name: str
    status: Literal["pending", "running", "completed", "failed"] = "completed"
    content: str = ""


class TeamAsk(Message, frozen=True, kw_only=True):
    """What every request of a team to one of its experts carries; `expert_id` is the last token of its subject."""

    expert_id: str
    team_id: str
    session_id: str
    expert: TeamExpert
    model: str
    llm: str = "default"
    """The configured LLM endpoint the expert answers with."""
    task: str
    interventions: list[str] = []
    """What the user said while the team ran, oldest first."""
    segment: str = ""
    """The segment id of the streamed chunks (phase results, synthesis); a reset frame names it."""
    max_tokens: int | None = None
    """The most tokens the answer may have."""
    timeout: float | None = None
    """Seconds the expert may generate; past them its answer is cut, and `truncated`."""
    call_id: str = ""
    """Where the expert reports it is still working (`ExpertWorking`); empty: no reports."""
    principal: Principal | None = None
    """Whose quotas the expert's model call counts against (who asked for the team); None: nobody's."""


class PlanTeam(TeamAsk, frozen=True, kw_only=True):
    """As lead, plan the task's phases for `members` as JSON (see `actors.team.plans`).

    When replanning, `progress` is the current plan with each phase's status
    and result, and `reason` says why the plan must change.
    """

    members: list[TeamExpert]
    progress: list[PhaseOutput] = []
    current: list[PlanPhase] = []
    reason: str = ""


class ExecutePhase(TeamAsk, frozen=True, kw_only=True):
    """As member, do `phase`, building on `inputs` (the results of the phases it depends on).

    On a revision, `previous` is the last result and `review` the lead's reasons.
    Stream the result as `expert_result_chunk` frames on the session's feed.
    """

    phase: PlanPhase
    inputs: list[PhaseOutput] = []
    attempt: int = 1
    previous: str = ""
    review: list[str] = []


class ReviewPhase(TeamAsk, frozen=True, kw_only=True):
    """As lead, review a member's result for `phase`: accept, or revise with reasons, as JSON."""

    phase: PlanPhase
    result: str
    attempt: int = 1
    final: bool = False
    """No revision is left: a `revise` verdict completes the phase unaccepted."""


class SynthesizeTeam(TeamAsk, frozen=True, kw_only=True):
    """As lead, write the team's answer to the task from the phase results; stream it as `team_synthesis_chunk`."""

    results: list[PhaseOutput]


TeamRequest = PlanTeam | ExecutePhase | ReviewPhase | SynthesizeTeam


class WithdrawExperts(Message, frozen=True, kw_only=True):
    """The board or team `owner_id` ended: its experts stop answering it (published to every worker)."""

    owner_id: str


withdrawals: Decoder[WithdrawExperts] = Decoder(WithdrawExperts, "expert withdrawal")
ExpertRequest = BoardRequest | TeamRequest


class ExpertAnswer(Reply, frozen=True, kw_only=True):
    """The whole text the expert produced, what it cost, and whether it was cut at its limit."""

    content: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: bool = False
    charged_to: list[str] = []
    """The departments whose quotas counted the call."""


ExpertReply = ExpertAnswer | ErrorReply


class ExpertWorking(Message, frozen=True, kw_only=True):
    """An expert is still answering the call `call_id` (sent every second on `<prefix>.actor.expert_call.<call_id>`).

    The caller of a request whose reports stop presumes the expert's worker
    died and asks again, instead of waiting for the whole generation timeout.
    """

    call_id: str
    worker: str = ""
    """`<host>:<pid>` of the worker answering (for operators, and for tests that stop it)."""
    answering: str = ""
    """What it answers: the request's type (`Speak`, `ExecutePhase`, …)."""


expert_requests: Decoder[ExpertRequest] = Decoder(ExpertRequest, "expert request")
expert_replies: Decoder[ExpertReply] = Decoder(ExpertReply, "expert reply")
expert_working: Decoder[ExpertWorking] = Decoder(ExpertWorking, "expert working report")
