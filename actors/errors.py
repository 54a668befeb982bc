"""Errors of the actors package: one base, subclasses with structured fields."""

from __future__ import annotations


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
