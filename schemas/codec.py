"""Encoding and decoding: msgspec JSON on the wire, one decoder per union built once."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec

from .commands import CreateSession, SessionCommand
from .envelope import FeedItem
from .events import AnyEvent
from .replies import CreateSessionReply, ErrorReply

T = TypeVar("T")

_encoder = msgspec.json.Encoder()


def encode(message: msgspec.Struct) -> bytes:
    """Encode a message as JSON bytes."""
    return _encoder.encode(message)


class DecodeError(ValueError):
    """Bytes that are not a valid message of the expected kind; the text says why."""

    def __init__(self, expected: str, reason: str) -> None:
        super().__init__(f"invalid {expected}: {reason}")
        self.expected = expected
        self.reason = reason

    def as_reply(self) -> ErrorReply:
        return ErrorReply(code="invalid_message", message=str(self))


class Decoder(Generic[T]):
    """A typed decoder whose only failure is `DecodeError`, whatever the bytes are."""

    def __init__(self, type_: Any, name: str) -> None:
        self._decoder = msgspec.json.Decoder(type_)
        self.name = name

    def decode(self, data: bytes | str) -> T:
        try:
            return self._decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise DecodeError(self.name, str(exc)) from None
        except (UnicodeDecodeError, RecursionError, OverflowError) as exc:
            raise DecodeError(self.name, type(exc).__name__) from None


session_commands: Decoder[SessionCommand] = Decoder(SessionCommand, "session command")
create_session: Decoder[CreateSession] = Decoder(CreateSession, "create_session request")
create_session_replies: Decoder[CreateSessionReply] = Decoder(CreateSessionReply, "create_session reply")
events: Decoder[AnyEvent] = Decoder(AnyEvent, "event")
feed: Decoder[FeedItem] = Decoder(FeedItem, "feed item")
