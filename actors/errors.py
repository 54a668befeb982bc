"""Errors of the actors package: one base, subclasses with structured fields."""

from __future__ import annotations

from bus import BusError
from projections import ConcurrencyError, DatabaseError, EventLogClosedError


class ActorError(Exception):
    """An actor could not take or handle a message."""


class MailboxFull(ActorError):
    """An actor's bounded mailbox is full; the sender should retry later."""

    def __init__(self, kind: str, actor_id: str) -> None:
        super().__init__(f"mailbox of {kind}:{actor_id} is full")
        self.kind = kind
        self.actor_id = actor_id


class ProviderError(ActorError):
    """An LLM provider failed to produce an answer."""

    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(f"LLM provider {provider} failed: {reason}")
        self.provider = provider
        self.reason = reason


def is_outage(exc: BaseException) -> bool:
    """Return whether `exc` is a failure of the infrastructure rather than of the work itself.

    The database or NATS being unreachable, a full mailbox, an actor that could
    not be activated: retried with back-off, without counting toward any bound
    on attempts, so an outage loses nothing. Anything else counts.

    A `ConcurrencyError` is one too: another worker wrote the stream (two owned
    the session for a moment, e.g. while a partition moved), so this actor's
    state is stale; dropped and re-activated from the log, it takes up the
    message again knowing what the other one recorded.
    """
    if type(exc) is ActorError or isinstance(exc, MailboxFull | ConcurrencyError):
        return True
    return isinstance(exc, DatabaseError | EventLogClosedError | BusError | OSError | TimeoutError)
