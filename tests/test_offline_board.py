"""The offline provider's board answers: deterministic, derived from the prompt, valid JSON when asked."""

from __future__ import annotations

import msgspec

from actors.board.conclusion import parse_conclusion
from actors.board.prompts import llm_request, split_consensus
from actors.llm import LLMMessage, LLMRequest, offline_answer
from schemas.events import ExpertProfile
from schemas.experts import Conclude, Speak, SummarizeRound, TranscriptEntry

TOPIC = "Adopt Rust?"
SKEPTIC = ExpertProfile(name="skeptic", persona="A risk analyst who asks for evidence.")
CHAIR = ExpertProfile(name="chair", is_moderator=True)
SAID = [
    TranscriptEntry(kind="speech", round=1, speaker="optimist", content="Yes,\nwe should."),
    TranscriptEntry(kind="intervention", round=1, speaker="user", content="we only have two engineers"),
]


def ask(kind: type, expert: ExpertProfile = SKEPTIC, transcript: list[TranscriptEntry] = SAID) -> str:
    request = kind(
        expert_id="b-x", board_id="b", session_id="s", expert=expert, model="offline", topic=TOPIC, round=1, max_rounds=2,
        transcript=transcript,
    )  # fmt: skip
    return offline_answer(llm_request(request))


def test_a_speech_names_the_topic_the_persona_the_previous_speaker_and_the_intervention() -> None:
    text = ask(Speak)
    assert text == ask(Speak)  # deterministic
    assert f'skeptic on "{TOPIC}" (round 1)' in text and "a risk analyst who asks for evidence" in text
    assert "optimist" in text and '"we only have two engineers"' in text


def test_a_summary_lists_the_speakers_and_declares_consensus_only_when_the_user_asks_for_it() -> None:
    text, consensus = split_consensus(ask(SummarizeRound, CHAIR))
    assert TOPIC in text and "optimist" in text and not consensus
    asked = [*SAID, TranscriptEntry(kind="intervention", round=1, speaker="user", content="Please reach consensus")]
    assert split_consensus(ask(SummarizeRound, CHAIR, asked))[1] is True


def test_the_conclusion_is_valid_json_about_the_topic() -> None:
    text = ask(Conclude, CHAIR, [*SAID, TranscriptEntry(kind="summary", round=1, speaker="chair", content="ok")])
    raw = msgspec.json.decode(text)
    assert set(raw) == {"summary", "decision_advice", "consensus_points", "dissent_points"}
    concluded = parse_conclusion(text, board_id="b", total_rounds=1, summaries=[])
    assert TOPIC in concluded.summary and "1 round " in concluded.summary and concluded.dissent_points


def test_chat_answers_are_unchanged() -> None:
    request = LLMRequest(model="offline", messages=[LLMMessage(role="user", content="hello")])
    assert offline_answer(request).startswith('You said: "hello".')
