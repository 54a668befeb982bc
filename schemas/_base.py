"""The conventions every message shares, set once in the base classes."""

from __future__ import annotations

import re

import msgspec


def _snake(class_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag=_snake):
    """A message that crosses a process boundary; its tag is its snake-case class name."""


class Command(Message, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An intent from outside the system; it may be refused. Unknown fields are rejected."""


class Event(Message, frozen=True, kw_only=True):
    """A persisted, immutable fact. New fields get defaults so old events stay readable."""


class Frame(Message, frozen=True, kw_only=True):
    """An ephemeral live-only message (a streamed chunk); never persisted."""


class Reply(Message, frozen=True, kw_only=True):
    """The answer to a request made over the bus."""


def tag_of(cls: type[Message]) -> str:
    """Return the wire tag (the `type` value) of a message class."""
    return str(cls.__struct_config__.tag)
