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


class DuplicateEventError(EventLogError):
    """An append reused event ids that do not make it a clean retry.

    Either only some of the batch's ids are already recorded, or they were
    recorded on another stream, or the batch repeats an id.
    """

    def __init__(self, stream: str, event_ids: list[str]) -> None:
        super().__init__(f"stream {stream!r}: event ids already used elsewhere or in part: {event_ids}")
        self.stream = stream
        self.event_ids = event_ids


class CorruptEventError(EventLogError):
    """A stored event cannot be decoded into a known event."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"event at position {position} is unreadable: {reason}")
        self.position = position
        self.reason = reason


class DatabaseError(EventLogError):
    """The database or its driver failed; `operation` says what we were doing."""

    def __init__(self, operation: str, reason: str) -> None:
        super().__init__(f"{operation} failed: {reason}")
        self.operation = operation
        self.reason = reason


class EventLogClosedError(EventLogError):
    """An append arrived after `EventLog.close()`."""

    def __init__(self) -> None:
        super().__init__("the event log is closed")


class TenantMismatch(EventLogError):
    """The database belongs to another subject prefix: tenants never share one (see `projections.tenant`)."""

    def __init__(self, owner: str, prefix: str) -> None:
        super().__init__(
            f"this database belongs to the subject prefix {owner!r}, not {prefix!r} (AGENTBUS_SUBJECT_PREFIX): "
            f"each prefix needs a database of its own; point AGENTBUS_DATABASE_URL at another database for "
            f"{prefix!r}, or start with AGENTBUS_SUBJECT_PREFIX={owner}"
        )
        self.owner = owner
        self.prefix = prefix
