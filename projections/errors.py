"""Errors of the projections package: one base, subclasses with structured fields."""

from __future__ import annotations


class EventLogError(Exception):
    """Something failed on the Postgres side."""


class ConcurrencyError(EventLogError):
    """An append expected a stream version that is no longer current."""

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        super().__init__(f"stream {stream!r}: expected version {expected}, found {actual}")
        self.stream = stream
        self.expected = expected
        self.actual = actual
