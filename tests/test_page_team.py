"""The chat page has a handler for every frame a team pipeline sends.

The page (`gateway/static/`, no build step) is driven in a browser by
tests/test_page.py; this cheap check catches the usual drift: a team event or
frame added to `schemas` that the page would silently drop, live and on reload
(the socket replays persisted events under the same names).
"""

from __future__ import annotations

import re
from pathlib import Path

import schemas.events.team as team_events
import schemas.frames as frames
from schemas import Message, tag_of
from schemas.events import UserIntervention

STATIC = Path(__file__).resolve().parent.parent / "gateway" / "static"


def _team_frame_names() -> set[str]:
    names = {tag_of(UserIntervention), tag_of(frames.TeamInterventionAck)}
    for module in (team_events, frames):
        for cls in vars(module).values():
            if (
                isinstance(cls, type)
                and issubclass(cls, Message)
                and cls.__module__ == module.__name__
                and "team_id" in cls.__struct_fields__
            ):
                names.add(tag_of(cls))
    return names


def _handled_by_page() -> set[str]:
    script = "\n".join(path.read_text() for path in sorted(STATIC.glob("*.js")))
    table = re.search(r"const teamFrames = \{(.*?)\n\};", script, re.S)
    assert table, "the page's teamFrames table is gone"
    keys = set(re.findall(r"^  ([a-z_]+)(?:\(|:)", table.group(1), re.M))
    return keys | set(re.findall(r'case "([a-z_]+)":', script))


def test_the_page_handles_every_team_frame() -> None:
    names = _team_frame_names()
    assert {"team_formed", "expert_result_chunk", "team_synthesis", "user_intervention"} <= names
    assert names - _handled_by_page() == set()
