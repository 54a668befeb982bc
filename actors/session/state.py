"""The session actor's logic as pure functions: `evolve` folds events, `decide` judges commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import msgspec

from schemas import CloseSession, CreateSession, Principal, RenameSession, SendMessage
from schemas.events import (
    AnyEvent,
    AssistantMessage,
    MessageFailed,
    SessionClosed,
    SessionCreated,
    SessionRenamed,
    UserMessage,
)
from schemas.streams import DEPARTMENTS_SESSION
from schemas.texts import ENGLISH, Texts

from ..board.plan import is_board_message
from ..llm import LLMMessage
from ..team.routing import is_team_message

GroupKind = Literal["board", "team"]


def group_kind(content: str) -> GroupKind | None:
    """Whether a message asks for a board or a team (well-formed or not); None for an agent turn."""
    if is_board_message(content):
        return "board"
    if is_team_message(content):
        return "team"
    return None


class Pending(msgspec.Struct, frozen=True, kw_only=True):
    """A user message still waiting for its answer; `history_len` cuts the history it sees."""

    message: UserMessage
    history_len: int


class SessionState(msgspec.Struct, kw_only=True):
    """What a session's own events say about it. Mutable: `evolve` updates it in place."""

    session_id: str
    version: int = 0
    created: bool = False
    agent_name: str = ""
    owner: str | None = None
    closed: bool = False
    title: str | None = None
    locale: str | None = None
    """The language the session asked for in its metadata (`locale`), if any."""
    history: list[LLMMessage] = []
    keys: dict[str, str] = {}
    """idempotency key -> user message id"""
    unanswered: dict[str, Pending] = {}
    """user message id -> the message, until its answer (or its failure) is recorded"""

    def running_turns(self) -> list[str]:
        """The user messages whose agent turn is still at work (every unanswered one not for a board or team)."""
        return [mid for mid, pending in self.unanswered.items() if group_kind(pending.message.content) is None]

    def open_group(self) -> tuple[GroupKind, str] | None:
        """The board or team that may be running: the latest unanswered `@board` or `@team` message."""
        for message_id in reversed(self.unanswered):
            kind = group_kind(self.unanswered[message_id].message.content)
            if kind is not None:
                return kind, message_id
        return None


def evolve(state: SessionState, event: AnyEvent) -> SessionState:
    """Apply one of the session's own events (mutating and returning `state`)."""
    state.version += 1
    match event:
        case SessionCreated(agent_name=agent_name, metadata=metadata, owner=owner):
            state.created = True
            state.agent_name = agent_name
            state.owner = owner
            locale = metadata.get("locale")
            state.locale = locale if isinstance(locale, str) else None
        case UserMessage():
            state.keys[event.idempotency_key] = event.message_id
            state.history.append(LLMMessage(role="user", content=event.content))
            state.unanswered[event.message_id] = Pending(message=event, history_len=len(state.history))
        case AssistantMessage():
            if event.reply_to is not None:
                state.unanswered.pop(event.reply_to, None)
            state.history.append(LLMMessage(role="assistant", content=event.content))
        case MessageFailed(reply_to=reply_to):
            state.unanswered.pop(reply_to, None)
        case SessionClosed():
            state.closed = True
        case SessionRenamed(title=title):
            state.title = title
    return state


class Refused(msgspec.Struct, frozen=True, kw_only=True):
    """The command cannot be carried out; `code` is stable."""

    code: str
    message: str


class Accepted(msgspec.Struct, frozen=True, kw_only=True):
    """Record these events."""

    events: list[AnyEvent]


class AlreadyDone(msgspec.Struct, frozen=True, kw_only=True):
    """A retry of something already recorded (`message_id`: the user message it made, if any)."""

    message_id: str | None = None


Decision = Accepted | Refused | AlreadyDone


def owner_of(principal: Principal | None) -> str | None:
    """The owner a session created by `principal` gets: a user or an admin; a service's sessions have none."""
    return principal.id if principal is not None and principal.role != "service" else None


def decide_create(state: SessionState, command: CreateSession) -> Decision:
    """Judge a create request for this session id; a retry is a no-op only for the same agent and owner."""
    owner = owner_of(command.principal)
    if state.session_id == DEPARTMENTS_SESSION:
        return Refused(code="invalid_session_id", message=f"{DEPARTMENTS_SESSION} is not a session id to create")
    if state.created:
        if command.agent_name == state.agent_name and owner == state.owner:
            return AlreadyDone()
        return Refused(code="session_exists", message=f"session {state.session_id} exists")
    created = SessionCreated(
        session_id=state.session_id, agent_name=command.agent_name, metadata=command.metadata, owner=owner
    )
    return Accepted(events=[created])


def decide_send(
    state: SessionState, command: SendMessage, new_id: Callable[[], str], texts: Texts = ENGLISH
) -> Decision:
    """Judge a user message: refused on an unknown or closed session (in `texts`' language), deduplicated by key."""
    if not state.created:
        return Refused(code="unknown_session", message=f"session {state.session_id} does not exist")
    key = command.idempotency_key or ""
    if key in state.keys:
        return AlreadyDone(message_id=state.keys[key])
    if state.closed:
        return Refused(code="session_closed", message=texts.session_closed.format(session_id=state.session_id))
    if not command.content.strip():
        return Refused(code="empty_message", message=texts.empty_message)
    return Accepted(
        events=[
            UserMessage(
                message_id=new_id(),
                content=command.content,
                idempotency_key=key or new_id(),
                model=command.model,
                execution_mode=command.execution_mode,
                principal=command.principal,
            )
        ]
    )


def decide_close(state: SessionState, command: CloseSession) -> Decision:
    """Judge a close: closing twice is a no-op."""
    if not state.created:
        return Refused(code="unknown_session", message=f"session {state.session_id} does not exist")
    if state.closed:
        return AlreadyDone()
    return Accepted(events=[SessionClosed()])


MAX_TITLE_CHARS = 200


def decide_rename(state: SessionState, command: RenameSession) -> Decision:
    """Judge a new title: it needs text and at most `MAX_TITLE_CHARS` characters; the same title again is a no-op."""
    if not state.created:
        return Refused(code="unknown_session", message=f"session {state.session_id} does not exist")
    title = " ".join(command.title.split())
    if not title:
        return Refused(code="empty_title", message="a title needs some text")
    if len(title) > MAX_TITLE_CHARS:
        return Refused(code="title_too_long", message=f"a title has at most {MAX_TITLE_CHARS} characters")
    if title == state.title:
        return AlreadyDone()
    return Accepted(events=[SessionRenamed(title=title)])
