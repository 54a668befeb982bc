"""Names of the event log's streams, one per actor: the only place they are spelled.

Every stream belongs to one actor, its single writer: a session, an agent turn,
a board meeting or a team pipeline. Readers (projections, replay, operators)
find an actor's history by the same names.
"""

from __future__ import annotations

BOARD_AGENT = "board_meeting"
"""The agent name a board's final answer is recorded under in its session."""

TEAM_AGENT = "team_collab"
"""The agent name a team's final answer is recorded under in its session (the seed's)."""


def session_stream(session_id: str) -> str:
    """The stream of one chat session: its messages, creation and close."""
    return f"session-{session_id}"


def refusals_stream(session_id: str) -> str:
    """The commands of one session that were refused for good (written by the worker, not the session)."""
    return f"refusals-{session_id}"


def turn_stream(turn_id: str) -> str:
    """The stream of one agent turn (its id is the id of the user message it answers)."""
    return f"turn-{turn_id}"


def board_stream(board_id: str) -> str:
    """The stream of one board meeting (its id is the id of the message that asked for it)."""
    return f"board-{board_id}"


def team_stream(team_id: str) -> str:
    """The stream of one team pipeline (its id is the id of the message that asked for it)."""
    return f"team-{team_id}"


DEPARTMENTS_SESSION = "_departments"
"""The session id department events are recorded under: no session has it (a create naming it is refused),
so no session's feed or history shows them."""


def department_stream(department_id: str) -> str:
    """The stream of one department: its creation, members and quotas (written by admins)."""
    return f"department-{department_id}"
