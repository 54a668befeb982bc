"""The message vocabulary of agentbus: commands, events, frames, replies, subjects, codec.

Everything here depends on msgspec only, so any service (in any language) can
speak to agentbus by producing the same JSON.
"""

from . import codec, events, limits
from ._base import Command, Event, Frame, Message, Reply, tag_of
from .codec import DecodeError, Decoder, UnknownTypeError, encode
from .commands import (
    Cancel,
    CloseSession,
    ConfirmationReply,
    CreateSession,
    ExecutionMode,
    HumanReply,
    Metadata,
    RenameSession,
    SendMessage,
    SessionCommand,
)
from .envelope import EventMeta, FeedItem, RecordedEvent
from .frames import (
    AnyFrame,
    CommandRefused,
    EventOmitted,
    ExpertResultChunk,
    ExpertResultChunkReset,
    ExpertSpeechChunk,
    ExpertSpeechChunkReset,
    TeamInterventionAck,
    TeamSynthesisChunk,
    TeamSynthesisChunkReset,
    Token,
    TokenReset,
)
from .layout import Layout
from .principal import Principal, Role
from .replies import CreateSessionReply, ErrorReply, SessionReady
from .streams import BOARD_AGENT, TEAM_AGENT, board_stream, refusals_stream, session_stream, team_stream, turn_stream
from .subjects import InvalidId, Subjects, partition_of, validate_id

__all__ = [
    "BOARD_AGENT",
    "TEAM_AGENT",
    "AnyFrame",
    "Cancel",
    "CloseSession",
    "Command",
    "CommandRefused",
    "ConfirmationReply",
    "CreateSession",
    "CreateSessionReply",
    "DecodeError",
    "Decoder",
    "ErrorReply",
    "Event",
    "EventMeta",
    "EventOmitted",
    "ExecutionMode",
    "ExpertResultChunk",
    "ExpertResultChunkReset",
    "ExpertSpeechChunk",
    "ExpertSpeechChunkReset",
    "FeedItem",
    "Frame",
    "HumanReply",
    "InvalidId",
    "Layout",
    "Message",
    "Metadata",
    "Principal",
    "RecordedEvent",
    "RenameSession",
    "Reply",
    "Role",
    "SendMessage",
    "SessionCommand",
    "SessionReady",
    "Subjects",
    "TeamInterventionAck",
    "TeamSynthesisChunk",
    "TeamSynthesisChunkReset",
    "Token",
    "TokenReset",
    "UnknownTypeError",
    "board_stream",
    "codec",
    "encode",
    "events",
    "limits",
    "partition_of",
    "refusals_stream",
    "session_stream",
    "tag_of",
    "team_stream",
    "turn_stream",
    "validate_id",
]
