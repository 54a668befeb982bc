"""Actors: the runtime, the session and agent-turn actors, LLM providers, the worker."""

from .errors import ActorError, MailboxFull, ProviderError
from .runtime import Actor, ActorHost, DrivenActor
from .worker import Worker

__all__ = ["Actor", "ActorError", "ActorHost", "DrivenActor", "MailboxFull", "ProviderError", "Worker"]
