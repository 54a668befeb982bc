"""The board family: a meeting of experts on a topic, owning `board-<board_id>`.

`plan` reads an `@board` message; `logic` folds the board's events and names
its next step (pure); `actor` records each step and runs the meeting in its
driver; `experts` answer speak / summarize / conclude requests over NATS on
any worker, with `prompts` and `conclusion` shaping what the models see and say.
"""

from .actor import BoardActor
from .experts import ExpertActor
from .messages import BoardFinished

__all__ = ["BoardActor", "BoardFinished", "ExpertActor"]
