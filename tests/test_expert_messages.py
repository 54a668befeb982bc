"""The board ↔ expert wire messages: every request and reply round-trips; bad bytes become a DecodeError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import DecodeError, ErrorReply, Subjects, encode
from schemas.experts import Conclude, ExpertAnswer, Speak, SummarizeRound, expert_replies, expert_requests
from tests.test_schemas import strategy_for


@pytest.mark.parametrize("request_type", [Speak, SummarizeRound, Conclude])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_every_expert_request_round_trips(request_type: type, data: st.DataObject) -> None:
    request = data.draw(strategy_for(request_type))
    assert expert_requests.decode(encode(request)) == request


@given(st.one_of(strategy_for(ExpertAnswer), strategy_for(ErrorReply)))
def test_every_expert_reply_round_trips(reply: ExpertAnswer | ErrorReply) -> None:
    assert expert_replies.decode(encode(reply)) == reply


@given(st.binary())
def test_random_bytes_only_ever_raise_decode_error(data: bytes) -> None:
    try:
        expert_requests.decode(data)
    except DecodeError:
        pass


def test_experts_are_addressed_one_by_one_and_served_by_wildcard() -> None:
    subjects = Subjects("agentbus")
    assert subjects.actor("expert", "b1-skeptic") == "agentbus.actor.expert.b1-skeptic"
    assert subjects.all_actors("expert") == "agentbus.actor.expert.*"


def test_an_expert_request_of_a_huge_meeting_carries_only_the_newest_transcript_that_fits_and_the_latest_summary() -> (
    None
):
    """A 20-round board of 199 experts once hit NATS's 1 MB limit: the request now stays small however long the meeting."""
    from actors.board.prompts import fit_transcript
    from schemas import encode
    from schemas.events import ExpertProfile
    from schemas.experts import Speak, TranscriptEntry

    transcript: list[TranscriptEntry] = []
    for round_ in range(1, 21):
        transcript += [
            TranscriptEntry(kind="speech", round=round_, speaker=f"expert{i}", content="A considered view. " * 20)
            for i in range(199)
        ]
        transcript.append(
            TranscriptEntry(kind="summary", round=round_, speaker="moderator", content=f"Round {round_}.")
        )
    transcript += [TranscriptEntry(kind="speech", round=21, speaker="late", content="x" * 400) for _ in range(5)]
    fitted = fit_transcript(transcript, 1536)
    assert transcript[-6] in fitted and fitted[-1] == transcript[-1]  # the latest summary, and the newest speeches
    assert fitted == sorted(fitted, key=transcript.index)  # in the meeting's order
    request = Speak(
        expert_id="b-e",
        board_id="b",
        session_id="s",
        expert=ExpertProfile(name="e"),
        model="m",
        topic="t",
        round=21,
        max_rounds=21,
        transcript=fitted,
    )
    assert len(encode(request)) < 16_000
