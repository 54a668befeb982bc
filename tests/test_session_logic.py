"""The session actor's decisions as pure functions: no I/O, no services."""

from __future__ import annotations

import itertools

from actors.session.state import (
    Accepted,
    AlreadyDone,
    Refused,
    SessionState,
    decide_close,
    decide_create,
    decide_send,
    evolve,
)
from schemas import CloseSession, CreateSession, SendMessage
from schemas.events import AssistantMessage, MessageFailed, SessionClosed, SessionCreated, UserMessage


def ids():
    counter = itertools.count(1)
    return lambda: f"id{next(counter)}"


def created(session_id: str = "s1") -> SessionState:
    return evolve(SessionState(session_id=session_id), SessionCreated(session_id=session_id, agent_name="assistant"))


def test_creating_a_new_session_records_session_created() -> None:
    decision = decide_create(SessionState(session_id="s1"), CreateSession(agent_name="assistant"))
    assert decision == Accepted(events=[SessionCreated(session_id="s1", agent_name="assistant")])


def test_creating_an_existing_session_again_is_a_retry_not_an_error() -> None:
    assert decide_create(created(), CreateSession(agent_name="assistant")) == AlreadyDone()


def test_creating_an_existing_session_for_another_agent_is_refused() -> None:
    decision = decide_create(created(), CreateSession(agent_name="other"))
    assert isinstance(decision, Refused) and decision.code == "session_exists"


def test_a_message_to_an_unknown_session_is_refused() -> None:
    decision = decide_send(SessionState(session_id="s1"), SendMessage(content="hi", idempotency_key="k"), ids())
    assert isinstance(decision, Refused) and decision.code == "unknown_session"


def test_a_message_is_recorded_with_its_idempotency_key() -> None:
    decision = decide_send(created(), SendMessage(content="hi", idempotency_key="k"), ids())
    assert decision == Accepted(events=[UserMessage(message_id="id1", content="hi", idempotency_key="k")])


def test_a_retried_message_is_recognised_by_its_key() -> None:
    state = evolve(created(), UserMessage(message_id="m1", content="hi", idempotency_key="k"))
    assert decide_send(state, SendMessage(content="hi", idempotency_key="k"), ids()) == AlreadyDone(message_id="m1")


def test_a_closed_session_refuses_new_messages_but_still_recognises_retries() -> None:
    state = evolve(created(), UserMessage(message_id="m1", content="hi", idempotency_key="k"))
    state = evolve(state, SessionClosed())
    refused = decide_send(state, SendMessage(content="more", idempotency_key="k2"), ids())
    assert isinstance(refused, Refused) and refused.code == "session_closed"
    assert decide_send(state, SendMessage(content="hi", idempotency_key="k"), ids()) == AlreadyDone(message_id="m1")


def test_an_empty_message_is_refused() -> None:
    decision = decide_send(created(), SendMessage(content="  ", idempotency_key="k"), ids())
    assert isinstance(decision, Refused) and decision.code == "empty_message"


def test_closing_twice_is_a_no_op() -> None:
    state = evolve(created(), SessionClosed())
    assert decide_close(state, CloseSession()) == AlreadyDone()


def test_an_answer_removes_its_message_from_the_unanswered_and_extends_the_history() -> None:
    state = evolve(created(), UserMessage(message_id="m1", content="hi", idempotency_key="k"))
    assert set(state.unanswered) == {"m1"} and state.unanswered["m1"].history_len == 1
    state = evolve(state, AssistantMessage(message_id="a1", content="hello", agent_name="assistant", reply_to="m1"))
    assert state.unanswered == {}
    assert [(m.role, m.content) for m in state.history] == [("user", "hi"), ("assistant", "hello")]
    assert state.version == 3


def said(state: SessionState, message_id: str, content: str = "hi") -> SessionState:
    return evolve(state, UserMessage(message_id=message_id, content=content, idempotency_key=message_id))


def test_the_running_turns_and_the_open_board_come_from_the_sessions_events_alone() -> None:
    """What a re-activated session knows: answered and failed messages no longer run, boards are not turns."""
    state = created()
    for message_id in ("m1", "m2", "m3", "m4"):
        state = said(state, message_id)
    state = said(state, "b1", "@board Should we?")
    state = evolve(state, AssistantMessage(message_id="a1", content="done", agent_name="assistant", reply_to="m1"))
    state = evolve(state, MessageFailed(reply_to="m2", code="cancelled", reason="cancelled"))
    assert state.running_turns() == ["m3", "m4"]
    assert state.open_group() == ("board", "b1")
    state = evolve(state, MessageFailed(reply_to="b1", code="board_failed", reason="an expert did not answer"))
    assert state.open_group() is None
    assert list(state.unanswered) == ["m3", "m4"]


def test_a_team_is_the_open_group_and_not_a_running_turn() -> None:
    """An unanswered `@team` message is where interventions and cancel go, and it does not count as a turn."""
    state = said(created(), "m1")
    state = said(state, "t1", "@team Build a login feature")
    assert state.running_turns() == ["m1"]
    assert state.open_group() == ("team", "t1")
    state = evolve(state, AssistantMessage(message_id="a1", content="done", agent_name="team_collab", reply_to="t1"))
    assert state.open_group() is None
