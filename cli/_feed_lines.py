"""A session's feed as lines for a person at a terminal (what `agentbus tail` prints).

One line per item: its log position (blank for live-only frames), its type,
who speaks, and its text, newlines shown as ` ↵ `. The streamed pieces of one
attempt (an answer's tokens, a speech's, a phase result's or a synthesis'
chunks) continue one line as they come, so an answer reads as it is written;
anything else starts the next line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TextIO

import msgspec

from schemas import (
    CommandRefused,
    ExpertResultChunk,
    ExpertResultChunkReset,
    ExpertSpeechChunk,
    ExpertSpeechChunkReset,
    FeedItem,
    Message,
    RecordedEvent,
    TeamInterventionAck,
    TeamSynthesisChunk,
    TeamSynthesisChunkReset,
    Token,
    TokenReset,
    tag_of,
)
from schemas.events import (
    ConfirmationResolved,
    HumanReplied,
    ModelCalled,
    SessionClosed,
    SessionCreated,
    TeamFormed,
    ToolCalled,
    ToolResult,
    TurnCompleted,
    TurnStarted,
    UserIntervention,
    UserMessage,
)

_SPEAKER_FIELDS = ("expert_name", "moderator_name", "reviewer", "raised_by", "from_expert", "assignee", "lead_expert")
_TEXT_FIELDS = ("content", "question", "topic", "task", "summary", "message", "risk", "reason", "command", "phase_name")
_FROM_USER = (UserMessage, UserIntervention, HumanReplied, ConfirmationResolved, TeamInterventionAck)
_IDS = ("turn_id", "team_id", "board_id")

Piece = Token | ExpertSpeechChunk | ExpertResultChunk | TeamSynthesisChunk
Reset = TokenReset | ExpertSpeechChunkReset | ExpertResultChunkReset | TeamSynthesisChunkReset


def flat(text: str) -> str:
    """`text` on one line."""
    return text.replace("\r\n", "\n").replace("\n", " ↵ ")


def prefix(position: int | None, kind: str, speaker: str) -> str:
    """The aligned start of a line: position, type, speaker."""
    where = "" if position is None else str(position)
    return f"{where:>6}  {kind:<22} {speaker:<12} "


def columns(position: int | None, kind: str, speaker: str, text: str) -> str:
    """One line: position, type, speaker, text."""
    return (prefix(position, kind, speaker) + flat(text)).rstrip()


def speaker_of(message: Message, agent: str, leads: Mapping[str, str]) -> str:
    """Who speaks in `message`: the user, a named expert, a team's lead, a board's moderator, or the session's agent."""
    if isinstance(message, _FROM_USER):
        return "user"
    fields = msgspec.structs.asdict(message)
    named = next((str(fields[name]) for name in _SPEAKER_FIELDS if fields.get(name)), "")
    if named:
        return named
    if "team_id" in fields:
        return leads.get(fields["team_id"], "lead")
    if "board_id" in fields:
        return "moderator"
    return str(fields.get("agent_name") or agent)


def text_of(message: Message) -> str:
    """What `message` says, in a few words where it has no prose of its own."""
    fields: dict[str, Any] = msgspec.structs.asdict(message)
    match message:
        case SessionCreated(agent_name=name):
            return f"session created for agent {name}"
        case TurnStarted(model=model, execution_mode=mode):
            return f"{mode} mode, model {model}" if model else f"{mode} mode"
        case SessionClosed(reason=reason):
            return f"session closed: {reason}" if reason else "session closed"
        case ToolCalled(tool=tool, arguments=arguments):
            return f"{tool} {arguments}"
        case ToolResult(tool=tool, content=content, is_error=is_error):
            return f"{tool} → {'error: ' if is_error else ''}{content}"
        case ModelCalled(tier=tier) | TurnCompleted(tier=tier):
            usage = f"tier {tier}, {message.prompt_tokens} prompt + {message.completion_tokens} completion tokens"
            return usage + (", cut at its limit" if message.truncated else "")
        case ConfirmationResolved(approved=approved, timed_out=timed_out):
            return "timed out" if timed_out else "approved" if approved else "declined"
        case CommandRefused(code=code, message=said):
            return f"{code}: {said}"
        case (
            TokenReset(segment=segment)
            | ExpertSpeechChunkReset(segment=segment)
            | ExpertResultChunkReset(segment=segment)
            | TeamSynthesisChunkReset(segment=segment)
        ):
            return f"discard what attempt {segment} streamed (it failed over, was retried or became a tool call)"
    text = next((str(fields[name]) for name in _TEXT_FIELDS if fields.get(name)), None)
    if text is None:  # no prose: its fields say what it is
        text = msgspec.json.encode({key: value for key, value in fields.items() if key not in _IDS}).decode()
    if "round" in fields:
        return f"round {fields['round']}: {text}"
    if fields.get("phase_id"):
        return f"{fields['phase_id']}: {text}"
    return text


class FeedPrinter:
    """Writes feed items to `out` as lines, each flushed at once (through a pipe too, they come as they happen)."""

    def __init__(self, out: TextIO, agent: str) -> None:
        self._out = out
        self._agent = agent
        self._leads: dict[str, str] = {}
        self._attempt: tuple[Any, ...] | None = None
        """The attempt whose pieces the open line shows; None when no line is open."""

    def show(self, item: FeedItem) -> None:
        match item:
            case RecordedEvent(position=position, event=event):
                if isinstance(event, TeamFormed):
                    self._leads[event.team_id] = event.lead_expert
                self._line(columns(position, tag_of(type(event)), self._speaker(event), text_of(event)))
            case Token() | ExpertSpeechChunk() | ExpertResultChunk() | TeamSynthesisChunk():
                self._piece(item)
            case _:
                self._line(columns(None, tag_of(type(item)), self._speaker(item), text_of(item)))

    def close(self) -> None:
        """End the open line, if any."""
        if self._attempt is not None:
            self._attempt = None
            self._write("\n")

    def _speaker(self, message: Message) -> str:
        return speaker_of(message, self._agent, self._leads)

    def _piece(self, piece: Piece) -> None:
        fields = msgspec.structs.asdict(piece)
        content = fields.pop("content")
        attempt = (type(piece), *fields.values())
        if attempt != self._attempt:
            self.close()
            self._write(prefix(None, tag_of(type(piece)), self._speaker(piece)))
            self._attempt = attempt
        self._write(flat(content))

    def _line(self, line: str) -> None:
        self.close()
        self._write(line + "\n")

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()
