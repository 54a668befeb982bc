"""The agent-turn family: one actor per user message, owning `turn-<turn_id>`.

`state` folds a turn's events; `logic` decides its next move (pure, tested
without services), `effects` what a tool run cut by a stop means (the effect
ledger); `driver` does the I/O between decisions (model calls, tools, waiting
for the user); `actor` is the only writer of the stream.
`setup`, `skills` and `phases` resolve what a turn runs with.
"""

from .actor import TurnActor
from .messages import StartTurn, TurnFinished

__all__ = ["StartTurn", "TurnActor", "TurnFinished"]
