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
