"""The prompts a board's experts are given: a speech, a round summary, the JSON conclusion.

The first lines of every prompt are `Topic:`, `Expert:` and `Round:`, and
the discussion so far follows as one `[round N] speaker (kind): text` line per
entry; the offline provider reads these lines back (see `llm.offline_board`).
"""

from __future__ import annotations

from schemas.experts import BoardRequest, Conclude, Speak, SummarizeRound, TranscriptEntry

from ..llm import LLMMessage, LLMRequest
from ..llm.budget import estimate_tokens, newest_that_fit
from ..llm.protocol import Purpose

CONSENSUS_YES = "CONSENSUS: yes"
CONSENSUS_NO = "CONSENSUS: no"

CONCLUSION_KEYS = '{"summary": str, "decision_advice": str, "consensus_points": [str], "dissent_points": [str]}'


def transcript_line(entry: TranscriptEntry) -> str:
    """One entry of the discussion as the prompt shows it (on one line)."""
    text = " ".join(entry.content.split())
    return f"[round {entry.round}] {entry.speaker} ({entry.kind}): {text}"


def fit_transcript(transcript: list[TranscriptEntry], budget: int) -> list[TranscriptEntry]:
    """The newest entries whose lines fit `budget` tokens, in order; the latest summary is always among them.

    A late speaker of a long meeting then costs what an early one does, and the
    request fits on the bus however long the meeting: the summary stands for
    what came before it.
    """
    summaries = [index for index, entry in enumerate(transcript) if entry.kind == "summary"]
    latest = frozenset(summaries[-1:])
    return newest_that_fit(transcript, budget, lambda entry: estimate_tokens(transcript_line(entry)), always=latest)


def llm_request(request: BoardRequest) -> LLMRequest:
    """Build what to ask the model for `request`."""
    expert = request.expert
    header = [f"Topic: {request.topic}", f"Expert: {expert.name}", f"Round: {request.round} of {request.max_rounds}"]
    said = [transcript_line(entry) for entry in request.transcript] or ["(nothing yet)"]
    body = [*header, "", "Discussion so far:", *said, ""]
    purpose: Purpose
    match request:
        case Speak():
            purpose = "board_speech"
            body.append(
                "Give your view on the topic in a few sentences, from your own expertise. "
                "Answer earlier speakers where you disagree, and take any user intervention into account."
            )
        case SummarizeRound():
            purpose = "board_summary"
            body.append(
                f"As moderator, summarize round {request.round} in a few sentences: where the experts agree, where they differ. "
                f"End with one line, `{CONSENSUS_YES}` if they have reached consensus, else `{CONSENSUS_NO}`."
            )
        case Conclude():
            purpose = "board_conclusion"
            body.append(
                f"As moderator, conclude the meeting. Reply with one JSON object only, no prose: {CONCLUSION_KEYS}"
            )
    system = f"You are {expert.name}, a member of a board of advisers. {expert.persona}".strip()
    return LLMRequest(
        model=request.model,
        messages=[LLMMessage(role="user", content="\n".join(body))],
        system_prompt=system,
        purpose=purpose,
        max_tokens=request.max_tokens,
    )


def split_consensus(text: str) -> tuple[str, bool]:
    """Split a moderator's summary into its text and whether it declares consensus (its last such line wins)."""
    lines = text.rstrip().splitlines()
    consensus = False
    kept: list[str] = []
    for line in lines:
        marker = line.strip().strip("`*_ ").lower()
        if marker.startswith("consensus:"):
            consensus = marker.removeprefix("consensus:").strip().startswith("yes")
        else:
            kept.append(line)
    return "\n".join(kept).strip(), consensus
