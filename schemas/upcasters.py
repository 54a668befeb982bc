"""Stored events of an older shape, read in today's: upcasters keyed by (event type, schema number).

Each row of the log keeps the `schema` number its event was written at. Events
evolve by gaining defaulted fields, and old rows are read as they are. A change
old rows cannot be read through (a field renamed or retyped, a tag replaced by
a new one) gives the type its next schema number and a step here:
`UPCASTERS[(type, n)]` rewrites the data stored at `n` into the shape of `n + 1`.
Steps chain up to the current shape, so a released step never changes. A type's
current number is one past its last step (1 while it has none): registering the
step is what makes new rows carry the new number.

No event has changed shape since rows were numbered, so the registry is empty:
the team events that changed shape during development were all written as
schema 1, and no number tells their rows apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from . import codec
from .codec import DecodeError
from .events import AnyEvent

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""One step: an event's stored data at schema `n` (with its `type`) → its data at `n + 1`."""

UPCASTERS: dict[tuple[str, int], Upcaster] = {}
"""(event type, schema number of the stored data) → the step that rewrites it into the next schema."""

FIRST_SCHEMA = 1
"""The schema number of a type that never changed shape."""

_stored = msgspec.json.Decoder(dict[str, Any])


def schema_of(event_type: str) -> int:
    """Return the schema number new events of `event_type` are written at."""
    return max((schema + 1 for (type_, schema) in UPCASTERS if type_ == event_type), default=FIRST_SCHEMA)


def decode_event(event_type: str, schema: int, data: bytes | str) -> AnyEvent:
    """Decode an event's stored data, written at `schema`, through the steps up to the current shape.

    Data of a schema newer than this code's (written by a newer worker) is
    decoded as it is: fields it does not know are ignored. Raises
    `UnknownTypeError` for a type this code does not know, `DecodeError` for
    data it cannot read (a step included, when the data is not the shape it expects).
    """
    if (event_type, schema) not in UPCASTERS:
        return codec.events.decode(data)
    try:
        stored = _stored.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise DecodeError(codec.events.name, str(exc)) from None
    type_ = event_type
    while (step := UPCASTERS.get((type_, schema))) is not None:
        try:
            stored = step(stored)
            type_ = str(stored["type"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DecodeError(codec.events.name, f"upcasting {type_} from schema {schema}: {exc!r}") from None
        schema += 1
    return codec.events.decode(msgspec.json.encode(stored))
