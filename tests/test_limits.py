"""The entrance limits: what `schemas.limits.check` refuses, and why its sizes keep every event under 1 MiB."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
import pytest

from schemas import CreateSession, EventMeta, HumanReply, RecordedEvent, SendMessage, encode, limits
from schemas.events import AssistantMessage, UserMessage


@pytest.mark.parametrize(
    ("char", "bytes_per_char"),
    [("a", 1), ('"', 2), ("\\", 2), ("\n", 2), ("\x01", 6), ("\x7f", 1), ("é", 2), ("中", 3), ("😀", 4)],
)
def test_msgspec_json_grows_a_character_by_its_escape_or_its_utf8(char: str, bytes_per_char: int) -> None:
    """The measured growth that makes sizes count JSON bytes, not characters: up to 6 bytes a character."""
    assert limits.json_size(char * 1000) == 1000 * bytes_per_char


def recorded(event: UserMessage | AssistantMessage) -> RecordedEvent:
    return RecordedEvent(
        position=2**40,
        stream="session-" + "s" * 128,
        version=2**31,
        session_id="s" * 128,
        event_id=str(uuid.uuid4()),
        schema=1,
        recorded_at=datetime.now(UTC),
        meta=EventMeta(correlation_id=uuid.uuid4().hex, causation_id=str(uuid.uuid4()), actor="session/" + "s" * 128),
        event=event,
    )


def test_the_envelope_of_a_recorded_message_is_under_a_kilobyte() -> None:
    """A recorded user message is its content and key plus an envelope of under 1 KiB, even with the longest ids."""
    content = "x" * 1000
    event = UserMessage(message_id=str(uuid.uuid4()), content=content, idempotency_key="k" * limits.MAX_KEY_BYTES)
    envelope = len(encode(recorded(event))) - len(content) - limits.MAX_KEY_BYTES
    assert 200 < envelope < 1024


def test_the_largest_answer_a_command_can_cause_fits_the_nats_payload() -> None:
    """The offline agent quotes the last two messages: two contents at the limit, worst escapes, stay under 1 MiB."""
    at_limit = "\x01" * (limits.MAX_TEXT_BYTES // 6)
    assert limits.check(SendMessage(content=at_limit)) is None
    answer = AssistantMessage(
        message_id=str(uuid.uuid4()), content=f'You said: "{at_limit}". "{at_limit}"', agent_name="a"
    )
    assert len(encode(recorded(answer))) < limits.NATS_MAX_PAYLOAD - 100 * 1024


def test_content_at_the_limit_is_accepted_and_one_byte_more_refused_as_too_large() -> None:
    assert limits.check(SendMessage(content="x" * limits.MAX_TEXT_BYTES)) is None
    refusal = limits.check(SendMessage(content="x" * (limits.MAX_TEXT_BYTES + 1)))
    assert refusal is not None and refusal.code == limits.TOO_LARGE and "content" in refusal.message


def test_content_is_measured_as_json_so_few_control_characters_can_be_too_large() -> None:
    """50 Ki characters of U+0001 are 300 KiB of JSON: over the 256 KiB limit."""
    refusal = limits.check(SendMessage(content="\x01" * 50 * 1024))
    assert refusal is not None and refusal.code == limits.TOO_LARGE


def test_a_nul_character_is_refused_in_content_reply_and_model() -> None:
    for command in (
        SendMessage(content="a\x00b"),
        SendMessage(content="ok", model="gpt\x00"),
        HumanReply(request_id="r1", content="\x00"),
    ):
        refusal = limits.check(command)
        assert refusal is not None and refusal.code == limits.INVALID_TEXT and "U+0000" in refusal.message


def test_a_nul_character_is_refused_in_metadata_values_and_keys() -> None:
    for metadata in ({"title": "a\x00"}, {"ti\x00tle": "a"}):
        refusal = limits.check(CreateSession(metadata=metadata))  # type: ignore[arg-type]
        assert refusal is not None and refusal.code == limits.INVALID_TEXT


def test_metadata_counts_toward_the_command_size() -> None:
    """Three values each under the text limit make a command over 512 KiB."""
    metadata = {f"k{i}": "x" * (limits.MAX_TEXT_BYTES - 10) for i in range(3)}
    refusal = limits.check(CreateSession(metadata=metadata))  # type: ignore[arg-type]
    assert refusal is not None and refusal.code == limits.TOO_LARGE and "command" in refusal.message


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    nested: object = "leaf"
    for _ in range(limits.MAX_DEPTH):
        nested = {"n": nested}
    refusal = limits.check(CreateSession(metadata=nested))  # type: ignore[arg-type]
    assert refusal is not None and refusal.code == limits.TOO_DEEP


def test_an_idempotency_key_that_would_break_its_header_is_refused() -> None:
    for key, code in (("a\r\nNats-Expected-Stream: x", limits.INVALID_TEXT), ("k" * 257, limits.TOO_LARGE)):
        refusal = limits.check(SendMessage(content="hi", idempotency_key=key))
        assert refusal is not None and refusal.code == code


def test_ordinary_commands_pass() -> None:
    assert limits.check(SendMessage(content='héllo 😀 "quoted"\n', idempotency_key=uuid.uuid4().hex)) is None
    assert limits.check(CreateSession(metadata={"title": "t", "n": 1, "ok": True, "none": None})) is None
    assert msgspec.json.decode(encode(SendMessage(content="x")))["type"] == "send_message"
