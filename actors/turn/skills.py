"""`@skill:<name>` routing: a message prefix that gives the turn a skill's prompt, tools and model."""

from __future__ import annotations

import re

import msgspec

_PREFIX = re.compile(r"^\s*@skill:([A-Za-z0-9_-]+)\s*", re.IGNORECASE)


class SkillRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A message that names a skill; `content` is the message without the prefix."""

    name: str
    content: str


def parse_skill(content: str) -> SkillRequest | None:
    """Return the skill a message asks for, or None if it has no `@skill:` prefix."""
    found = _PREFIX.match(content)
    if found is None:
        return None
    return SkillRequest(name=found.group(1).lower(), content=content[found.end() :])
