"""The message vocabulary: every message round-trips, and no bytes make a decoder raise anything but DecodeError."""

from __future__ import annotations

import types
import typing
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import (
    Command,
    DecodeError,
    Event,
    EventMeta,
    Frame,
    InvalidId,
    SendMessage,
    Subjects,
    codec,
    encode,
    tag_of,
    validate_id,
)
from schemas.commands import SessionCommand
from schemas.envelope import FeedItem, RecordedEvent
from schemas.events import AnyEvent, UserMessage


def members(union: object) -> list[type[msgspec.Struct]]:
    return list(typing.get_args(union))


def _struct_strategy(cls: type[msgspec.Struct]) -> st.SearchStrategy[msgspec.Struct]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: strategy_for(hints[f.name]) for f in msgspec.structs.fields(cls)}
    return st.builds(cls, **fields)


def strategy_for(hint: object) -> st.SearchStrategy[object]:
    """Draw values of `hint`, every Struct field included (defaults too).

    JSON has no NaN or infinity (msgspec writes null), and writers only produce finite floats.
    """
    if hint is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if hint is typing.Any:  # metadata: any JSON value
        return st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
            max_leaves=5,
        )
    if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
        return st.deferred(lambda: _struct_strategy(hint))
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return st.lists(strategy_for(args[0]), max_size=3)
    if origin is dict:
        return st.dictionaries(strategy_for(args[0]), strategy_for(args[1]), max_size=3)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([strategy_for(arg) for arg in args])
    return st.from_type(hint)


EVENT_TYPES = members(AnyEvent)
COMMAND_TYPES = members(SessionCommand)
FEED_TYPES = [t for t in members(FeedItem) if t is not RecordedEvent]


def test_every_message_kind_has_a_unique_snake_case_tag() -> None:
    tags = [tag_of(t) for t in [*EVENT_TYPES, *COMMAND_TYPES, *FEED_TYPES]]
    assert len(tags) == len(set(tags))
    assert all(tag == tag.lower() and " " not in tag for tag in tags)
    assert tag_of(UserMessage) == "user_message"


def test_the_design_vocabulary_is_complete() -> None:
    named = {
        "session_created", "user_message", "assistant_message", "session_closed",
        # Beyond DESIGN §2: a message that ends without an answer is a session fact too,
        # and each model call of a turn is recorded with its usage.
        "message_failed", "model_called", "command_rejected",
        # A session's title, set by a rename (clients list sessions by it).
        "session_renamed",
        "turn_started", "skill_matched", "thinking", "tool_called", "tool_result",
        "confirmation_requested", "confirmation_resolved", "human_asked", "human_replied",
        "phase_changed", "phase_violation", "turn_completed", "turn_failed", "turn_cancelled",
        "board_started", "expert_speech", "round_summary", "user_intervention", "board_concluded", "board_failed",
        "team_formed", "plan_update", "phase_started", "expert_step", "expert_result", "review_result",
        "risk_flagged", "phase_completed", "phase_failed", "replanning", "collaboration_notice",
        "team_synthesis", "team_dissolved",
        # The seed's team events beyond DESIGN §2: what each member owes whom, and each planned step.
        "collaboration_contract_defined", "plan_step",
        # DESIGN §7: departments, their members and quotas are events in the log.
        "department_created", "department_member_added", "department_member_removed", "quota_set",
        # Issue 14: what is left of an erased session (its tombstone, and one ending each of its other streams).
        "session_erased", "stream_erased",
        # Issue 15, DESIGN §4 Effects: a tool run recorded as started, and a start found without a result.
        "tool_started", "tool_outcome_unknown",
    }  # fmt: skip
    assert named == {tag_of(t) for t in EVENT_TYPES}
    frames = {
        "token",
        "expert_speech_chunk",
        "expert_result_chunk",
        "expert_result_chunk_reset",
        "team_synthesis_chunk",
        "team_synthesis_chunk_reset",
    }
    assert frames <= {tag_of(t) for t in FEED_TYPES}


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=tag_of)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_every_event_round_trips_through_the_event_decoder(event_type: type[Event], data: st.DataObject) -> None:
    event = data.draw(strategy_for(event_type))
    assert codec.events.decode(encode(event)) == event


@pytest.mark.parametrize("command_type", COMMAND_TYPES, ids=tag_of)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_every_session_command_round_trips(command_type: type[Command], data: st.DataObject) -> None:
    command = data.draw(strategy_for(command_type))
    assert codec.session_commands.decode(encode(command)) == command


@pytest.mark.parametrize("frame_type", FEED_TYPES, ids=tag_of)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_every_frame_round_trips_through_the_feed_decoder(frame_type: type[Frame], data: st.DataObject) -> None:
    frame = data.draw(strategy_for(frame_type))
    assert codec.feed.decode(encode(frame)) == frame


@settings(max_examples=50, deadline=None)
@given(event=st.one_of([strategy_for(t) for t in EVENT_TYPES]), position=st.integers(1, 2**62))
def test_recorded_events_round_trip_through_the_feed_decoder(event: Event, position: int) -> None:
    recorded = RecordedEvent(
        position=position,
        stream="s",
        version=1,
        session_id="s1",
        event_id="00000000-0000-0000-0000-000000000001",
        schema=1,
        recorded_at=datetime(2026, 1, 1, tzinfo=UTC),
        meta=EventMeta(actor="session:s1"),
        event=event,
    )
    assert codec.feed.decode(encode(recorded)) == recorded


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_random_bytes_only_ever_raise_decode_error(data: bytes) -> None:
    for decoder in (codec.session_commands, codec.events, codec.feed, codec.create_session):
        try:
            decoder.decode(data)
        except DecodeError as exc:
            assert exc.as_reply().code == "invalid_message"


def test_unknown_fields_in_commands_are_refused_with_a_clear_message() -> None:
    with pytest.raises(DecodeError, match="unknown field"):
        codec.session_commands.decode(b'{"type":"send_message","content":"hi","contnet":"typo"}')


def test_events_from_a_newer_writer_with_extra_fields_stay_readable() -> None:
    event = codec.events.decode(
        b'{"type":"user_message","message_id":"m","content":"hi","idempotency_key":"k","added_later":1}'
    )
    assert event == UserMessage(message_id="m", content="hi", idempotency_key="k")


def test_an_unknown_type_names_the_bad_tag() -> None:
    with pytest.raises(DecodeError, match="nope"):
        codec.session_commands.decode(b'{"type":"nope"}')


@pytest.mark.parametrize("bad", ["", "a.b", "a*", "a>", "a b", "a\tb", "x" * 129, "é"])
def test_ids_that_would_escape_a_subject_are_refused(bad: str) -> None:
    with pytest.raises(InvalidId):
        validate_id(bad)
    with pytest.raises(InvalidId):
        Subjects().session_cmd(bad)


def test_subjects_follow_the_design() -> None:
    subjects = Subjects()
    assert subjects.sessions_create == "agentbus.sessions.create"
    assert subjects.session_cmd("abc") == "agentbus.session.abc.cmd"
    assert subjects.session_evt("abc") == "agentbus.session.abc.evt"
    assert subjects.actor("expert", "e1") == "agentbus.actor.expert.e1"
    assert subjects.cmd_stream == "AGENTBUS_CMD"
    assert Subjects.session_of("agentbus.part.3.session.abc.cmd") == "abc"


def test_a_send_message_needs_content() -> None:
    with pytest.raises(DecodeError, match="content"):
        codec.session_commands.decode(
            encode(SendMessage(content="x"))[:-1].replace(b'"content":"x"', b'"model":null') + b"}"
        )
