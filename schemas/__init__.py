"""The message vocabulary of agentbus: commands, events, frames, replies, subjects, codec.

Everything here depends on msgspec only, so any service (in any language) can
speak to agentbus by producing the same JSON.
"""

from . import codec, events
from ._base import Command, Event, Frame, Message, Reply, tag_of
from .codec import DecodeError, Decoder, encode
from .commands import (
    Cancel,
    CloseSession,
    ConfirmationReply,
    CreateSession,
    ExecutionMode,
    Metadata,
    SendMessage,
    SessionCommand,
)
from .commands import (
    Reply as HumanReply,
)
from .envelope import EventMeta, FeedItem, RecordedEvent
from .frames import (
    AnyFrame,
    CommandRefused,
    ExpertResultChunk,
    ExpertResultChunkReset,
    ExpertSpeechChunk,
    TeamInterventionAck,
    TeamSynthesisChunk,
    Token,
)
from .replies import CreateSessionReply, ErrorReply, SessionReady
from .subjects import InvalidId, Subjects, validate_id

__all__ = [
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
    "ExecutionMode",
    "ExpertResultChunk",
    "ExpertResultChunkReset",
    "ExpertSpeechChunk",
    "FeedItem",
    "Frame",
    "HumanReply",
    "InvalidId",
    "Message",
    "Metadata",
    "RecordedEvent",
    "Reply",
    "SendMessage",
    "SessionCommand",
    "SessionReady",
    "Subjects",
    "TeamInterventionAck",
    "TeamSynthesisChunk",
    "Token",
    "codec",
    "encode",
    "events",
    "tag_of",
    "validate_id",
]
