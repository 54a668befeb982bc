"""Entrance limits: what a command may hold, so that nothing it becomes can later fail to fit.

A command becomes events: a `RecordedEvent` on the session's live subject (NATS
carries at most `max_payload`, 1 MiB by default) and a jsonb row (PostgreSQL's
jsonb cannot hold U+0000). Every entrance (the gateway's socket and REST
bodies, the bus's publish, consume and serve) calls `check` once, so a command
that is accepted fits everywhere it goes.

Sizes are measured as msgspec's JSON encoding, the bytes that travel, not as
characters: escaping makes a text longer (a quote, a backslash or a newline
takes 2 bytes, another control character 6, `\\u0001`), non-ASCII travels as
UTF-8 (2-4 bytes a character). The largest event a command becomes is the
offline agent's answer, which quotes the last two user messages: 2 ×
`MAX_TEXT_BYTES` plus an envelope of a few hundred bytes, well under 1 MiB.

A number a client names in a query (a position, an offset, a count) must fit
PostgreSQL's bigint: `Position` and `Count` bound it, so a larger one is refused
at the entrance (`position` for a socket's `?after=`, the REST query types for
REST) instead of failing in the database.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ._base import Command
from .commands import SendMessage

MAX_TEXT_BYTES = 256 * 1024
"""One string of a command (a message's content, a reply, a metadata value), JSON-encoded."""

MAX_COMMAND_BYTES = 512 * 1024
"""A whole command, JSON-encoded (metadata included)."""

MAX_KEY_BYTES = 256
"""An idempotency key; it also travels in the `Nats-Msg-Id` header, so it holds no control character."""

MAX_DEPTH = 8
"""Nesting of objects and arrays in a command (a command with metadata has 2)."""

MAX_BODY_BYTES = 4 * MAX_COMMAND_BYTES
"""A request body as sent, read before decoding; what counts is `check` on the decoded command.

Other encoders escape more than msgspec (Python's `json.dumps` writes an emoji
as 12 bytes of `\\ud83d\\ude00`), so a body may be larger than the command it holds.
"""

MAX_SOCKET_FRAME_BYTES = 64 * 1024
"""One WebSocket text frame of a chat client (tighter than REST: a chat line, not a document)."""

NATS_MAX_PAYLOAD = 1024 * 1024
"""NATS's default `max_payload`: the largest message the live subject carries."""

MAX_POSITION = 2**63 - 1
"""The largest log position, offset or count a request may name: a PostgreSQL bigint holds no more."""

Position = Annotated[int, msgspec.Meta(ge=0, le=MAX_POSITION)]
"""A log position or an offset a client names (`?after=`, `?offset=`, `?at=`)."""

Count = Annotated[int, msgspec.Meta(ge=1, le=MAX_POSITION)]
"""How many items a client asks for (`?limit=`)."""

TOO_LARGE = "too_large"
INVALID_TEXT = "invalid_text"
TOO_DEEP = "too_deep"
INVALID_NUMBER = "invalid_number"

_encoder = msgspec.json.Encoder()
_WORST_ESCAPE = 6  # bytes one character can become in msgspec's JSON (`\u001f`)


class Refusal(msgspec.Struct, frozen=True, kw_only=True):
    """Why a command is refused at the entrance: `code` is stable, `message` human."""

    code: str
    message: str


def json_size(text: str) -> int:
    """Return how many bytes `text` takes inside a JSON string, as msgspec encodes it."""
    return len(_encoder.encode(text)) - 2


def check(command: Command) -> Refusal | None:
    """Return why `command` breaks a limit, or None when it fits everywhere it goes.

    Each string is checked before the whole, so the refusal names the field at fault.
    """
    if isinstance(command, SendMessage) and command.idempotency_key is not None:
        key = command.idempotency_key
        if len(key.encode()) > MAX_KEY_BYTES:
            return Refusal(code=TOO_LARGE, message=f"idempotency_key is longer than {MAX_KEY_BYTES} bytes")
        if any(ord(char) < 0x20 or char == "\x7f" for char in key):
            return Refusal(code=INVALID_TEXT, message="idempotency_key holds a control character")
    if refusal := _check_value(msgspec.to_builtins(command), "", 0):
        return refusal
    size = len(_encoder.encode(command))
    if size > MAX_COMMAND_BYTES:
        return Refusal(code=TOO_LARGE, message=f"the command is {size} bytes as JSON, more than {MAX_COMMAND_BYTES}")
    return None


def check_json(value: object, path: str, depth: int = 0) -> Refusal | None:
    """Return why a decoded JSON value breaks the text or nesting limits, or None.

    `depth` is where the value will sit in a command (1 for a command's field), so a
    value a gateway takes apart before it builds the command is held to the same limits.
    """
    return _check_value(value, path, depth)


def position(text: str, name: str) -> int | Refusal:
    """Return the `Position` that `text` (a query parameter called `name`) names, or why it names none."""
    try:
        return msgspec.convert(text, Position, strict=False)
    except msgspec.ValidationError:
        return Refusal(code=INVALID_NUMBER, message=f"{name} must be an integer from 0 to {MAX_POSITION}")


def _check_value(value: Any, path: str, depth: int) -> Refusal | None:
    if isinstance(value, str):
        return _check_text(value, path)
    if isinstance(value, dict | list):
        if depth >= MAX_DEPTH:
            return Refusal(code=TOO_DEEP, message=f"{path or 'the command'} is nested deeper than {MAX_DEPTH} levels")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for name, item in items:
            where = f"{path}.{name}" if path else str(name)
            if isinstance(name, str) and (refusal := _check_text(name, f"a key of {path or 'the command'}")):
                return refusal
            if refusal := _check_value(item, where, depth + 1):
                return refusal
    return None


def _check_text(text: str, path: str) -> Refusal | None:
    if "\x00" in text:
        return Refusal(code=INVALID_TEXT, message=f"{path} holds a NUL character (U+0000), which cannot be stored")
    if len(text) * _WORST_ESCAPE <= MAX_TEXT_BYTES:
        return None  # short enough whatever it holds: no need to encode it
    size = json_size(text)
    if size > MAX_TEXT_BYTES:
        return Refusal(code=TOO_LARGE, message=f"{path} is {size} bytes as JSON, more than {MAX_TEXT_BYTES}")
    return None
