"""Encoding and decoding: msgspec JSON on the wire, one decoder per union built once."""

from __future__ import annotations

from types import UnionType
from typing import Any, Generic, TypeVar, Union, get_args, get_origin

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


class UnknownTypeError(DecodeError):
    """A well-formed message whose `type` this code does not know: sent by a newer peer during a rolling upgrade."""

    def __init__(self, expected: str, type_: str) -> None:
        super().__init__(expected, f"unknown type {type_!r}")
        self.type = type_


class _Typed(msgspec.Struct):
    type: str | None = None


_typed = msgspec.json.Decoder(_Typed)


class Decoder(Generic[T]):
    """A typed decoder whose only failure is `DecodeError`, whatever the bytes are.

    A message of a tagged union whose tag is none of the union's is an
    `UnknownTypeError`, so that a reader can tell "newer than me" from "broken".
    """

    def __init__(self, type_: Any, name: str) -> None:
        self._decoder = msgspec.json.Decoder(type_)
        self.name = name
        members = get_args(type_) if isinstance(type_, UnionType) or get_origin(type_) is Union else (type_,)
        self.tags = frozenset(str(m.__struct_config__.tag) for m in members if _is_tagged(m))
        """The `type` values this decoder reads (empty if `type_` is not tagged)."""

    def decode(self, data: bytes | str) -> T:
        try:
            return self._decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise self._unknown_type(data) or DecodeError(self.name, str(exc)) from None
        except (UnicodeDecodeError, RecursionError, OverflowError) as exc:
            raise DecodeError(self.name, type(exc).__name__) from None

    def _unknown_type(self, data: bytes | str) -> UnknownTypeError | None:
        """Read only the tag of a message that failed to decode (the failure path alone pays for it)."""
        if not self.tags:
            return None
        try:
            tag = _typed.decode(data).type
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError, OverflowError):
            return None
        return UnknownTypeError(self.name, tag) if tag is not None and tag not in self.tags else None


def _is_tagged(member: Any) -> bool:
    return isinstance(member, type) and issubclass(member, msgspec.Struct) and member.__struct_config__.tag is not None


session_commands: Decoder[SessionCommand] = Decoder(SessionCommand, "session command")
create_session: Decoder[CreateSession] = Decoder(CreateSession, "create_session request")
create_session_replies: Decoder[CreateSessionReply] = Decoder(CreateSessionReply, "create_session reply")
events: Decoder[AnyEvent] = Decoder(AnyEvent, "event")
feed: Decoder[FeedItem] = Decoder(FeedItem, "feed item")
