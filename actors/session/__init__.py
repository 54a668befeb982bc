"""The session family: one actor per chat session, owning `session-<sid>`.

`state` folds the session's events and judges its commands (pure); `actor`
records messages and hands each one to a turn or a board; `routing` sends
cancel, replies and confirmations to the turn they concern.
"""

from .actor import SessionActor
from .messages import Abandon, Deliver

__all__ = ["Abandon", "Deliver", "SessionActor"]
