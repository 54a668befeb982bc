"""The board family: a meeting of experts on a topic, owning `board-<board_id>`.

`plan` reads an `@board` message; `logic` folds the board's events and names
its next step (pure); `actor` records each step and runs the meeting in its
driver, asking the experts (`actors.experts`) over NATS; `prompts` and
`conclusion` shape what the models see and say.
"""

from .actor import BoardActor
from .messages import BoardFinished

__all__ = ["BoardActor", "BoardFinished"]
