"""Read the lead's JSON plan and reviews, repairing what models commonly get wrong.

Models wrap JSON in code fences or prose, leave a trailing comma, use other
key spellings, name an assignee who is not on the team or a dependency that
does not exist, or make a cycle. `parse_plan` tries strict JSON, then the
outermost `{…}` or `[…]` with trailing commas removed and keys read leniently;
`normalize` then makes any list of phases runnable (unique ids, known
assignees, dependencies only on phases that exist, no cycles, in dependency
order). When nothing parses, `fallback_plan` gives every member one phase of
the task: a plan is never lost to a stray comma.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec

from schemas.events import Contract, PlanPhase, TeamExpert
from schemas.events.team import Severity, Verdict

_CLOSER = re.compile(r"\s*[}\]]")
_SLUG = re.compile(r"[^a-z0-9]+")

_ALIASES = {
    "title": "name",
    "phase": "name",
    "description": "goal",
    "objective": "goal",
    "task": "goal",
    "deliverable": "goal",
    "owner": "assignee",
    "expert": "assignee",
    "member": "assignee",
    "assigned_to": "assignee",
    "dependencies": "depends_on",
    "deps": "depends_on",
    "after": "depends_on",
    "phase_id": "id",
}


class _Phase(msgspec.Struct, frozen=True, kw_only=True):
    id: str = ""
    name: str = ""
    goal: str = ""
    assignee: str = ""
    depends_on: list[str] = []


class _Plan(msgspec.Struct, frozen=True, kw_only=True):
    phases: list[_Phase] = []


def parse_plan(text: str) -> list[PlanPhase] | None:
    """The phases in the lead's answer, as written (see `normalize`); None if no phase can be read."""
    for candidate in _json_candidates(text):
        raw = _decode(candidate)
        if raw is None:
            continue
        if isinstance(raw, dict):
            raw = next((raw[key] for key in ("phases", "plan", "steps") if isinstance(raw.get(key), list)), None)
        if not isinstance(raw, list):
            continue
        phases = [phase for item in raw if (phase := _lenient_phase(item)) is not None]
        if phases:
            return phases
    return None


def _json_candidates(text: str) -> Iterable[str]:
    stripped = text.strip()
    yield stripped
    for start_char, end_char in (("{", "}"), ("[", "]")):
        start, end = stripped.find(start_char), stripped.rfind(end_char)
        if 0 <= start < end:
            yield stripped[start : end + 1]


def _decode(candidate: str) -> Any:
    for attempt in (candidate, _without_trailing_commas(candidate)):
        try:
            return msgspec.json.decode(attempt)
        except (msgspec.DecodeError, RecursionError):  # a model stuck on "[[[[…" nests past the decoder's depth
            continue
    return None


def _without_trailing_commas(text: str) -> str:
    """`text` without the commas before a closing `}` or `]`, leaving the insides of strings alone."""
    out: list[str] = []
    in_string = escaped = False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "," and _CLOSER.match(text, index + 1):
            continue
        out.append(char)
    return "".join(out)


def _lenient_phase(item: object) -> PlanPhase | None:
    if not isinstance(item, dict):
        return None
    fields: dict[str, Any] = {}
    for key, value in item.items():
        name = _ALIASES.get(str(key).lower(), str(key).lower())
        if name == "depends_on":
            values = value if isinstance(value, list) else [value] if value else []
            fields[name] = [str(v) for v in values if isinstance(v, str | int)]
        elif name in ("id", "name", "goal", "assignee") and isinstance(value, str | int):
            fields.setdefault(name, str(value))
    phase = msgspec.convert(fields, type=_Phase)
    if not (phase.id or phase.name or phase.goal):
        return None
    return PlanPhase(
        id=phase.id, name=phase.name, goal=phase.goal, assignee=phase.assignee, depends_on=list(phase.depends_on)
    )


def slug(text: str) -> str:
    """A phase id from any text: lower case, a-z 0-9 and dashes."""
    return _SLUG.sub("-", text.lower()).strip("-")[:40]


def normalize(
    phases: list[PlanPhase],
    members: list[TeamExpert],
    *,
    lead: TeamExpert,
    max_phases: int,
    keep: Iterable[PlanPhase] = (),
) -> list[PlanPhase]:
    """Make `phases` runnable, in dependency order, at most `max_phases` of them beside the `keep` ones.

    `keep` (the phases already done or under way when replanning) stay as they
    are, and a new phase with one of their ids is dropped. Assignees are
    matched to the team by name (any case; the lead may take a phase), else
    spread over the members in turn; a dependency on a phase that does not exist, or one closing a cycle,
    is dropped.
    """
    kept = list(keep)
    names = {expert.name.lower(): expert.name for expert in [lead, *members]}
    kept_ids = {phase.id for phase in kept}
    taken = set(kept_ids)
    fresh: list[PlanPhase] = []
    for index, phase in enumerate(phases):
        if len(fresh) >= max_phases:
            break
        base = slug(phase.id) or slug(phase.name) or f"phase-{index + 1}"
        if base in kept_ids:
            continue  # a phase done or under way cannot be planned again
        unique, n = base, 2
        while unique in taken:
            unique, n = f"{base}-{n}", n + 1
        taken.add(unique)
        assignee = names.get(phase.assignee.strip().lower()) or members[len(fresh) % len(members)].name
        fresh.append(
            PlanPhase(
                id=unique,
                name=phase.name.strip() or unique,
                goal=phase.goal.strip(),
                assignee=assignee,
                depends_on=[slug(dep) for dep in phase.depends_on],
            )
        )
    return _in_dependency_order([*kept, *fresh])


def _in_dependency_order(phases: list[PlanPhase]) -> list[PlanPhase]:
    """Order phases so each comes after its dependencies (stable), dropping unknown and cycle-closing ones."""
    known = {phase.id for phase in phases}
    pending = [
        msgspec.structs.replace(
            phase, depends_on=list(dict.fromkeys(d for d in phase.depends_on if d in known and d != phase.id))
        )
        for phase in phases
    ]
    ordered: list[PlanPhase] = []
    placed: set[str] = set()
    while pending:
        ready = next((p for p in pending if all(d in placed for d in p.depends_on)), None)
        if ready is None:
            # A cycle: the first waiting phase keeps only the dependencies already placed.
            first = pending[0]
            ready = msgspec.structs.replace(first, depends_on=[d for d in first.depends_on if d in placed])
            pending[0] = ready
        pending.remove(ready)
        ordered.append(ready)
        placed.add(ready.id)
    return ordered


def fallback_plan(task: str, members: list[TeamExpert]) -> list[PlanPhase]:
    """One independent phase per member when the lead's plan cannot be read."""
    return [
        PlanPhase(
            id=slug(member.name) or f"phase-{index + 1}",
            name=f"{member.name}'s part",
            goal=f"From your expertise, deliver your part of: {task}",
            assignee=member.name,
        )
        for index, member in enumerate(members)
    ]


def contracts(phases: list[PlanPhase], lead: str) -> list[Contract]:
    """What each phase's assignee owes whom: the members whose phases build on it, else the lead."""
    contracts_: list[Contract] = []
    for phase in phases:
        consumers = [other.assignee for other in phases if phase.id in other.depends_on]
        contracts_.append(
            Contract(
                phase_id=phase.id,
                owner=phase.assignee,
                deliverable=phase.goal or phase.name,
                consumers=list(dict.fromkeys(consumers)) or [lead],
            )
        )
    return contracts_


class Risk(msgspec.Struct, frozen=True, kw_only=True):
    risk: str
    severity: Severity = "medium"


class Review(msgspec.Struct, frozen=True, kw_only=True):
    """The lead's verdict on a phase result."""

    verdict: Verdict
    reasons: list[str] = []
    risks: list[Risk] = []


_VERDICT_KEYS = {"verdict", "decision", "status", "approved"}
_SEVERITIES: dict[str, Severity] = {"low": "low", "medium": "medium", "high": "high"}
_REVISE = re.compile(r"\b(revise|revision|rework|redo|reject(ed)?)\b", re.IGNORECASE)


def parse_review(text: str) -> Review:
    """The lead's review; never raises. Text without a JSON verdict is judged by its words (accept unless it says revise)."""
    for candidate in _json_candidates(text):
        raw = _decode(candidate)
        if isinstance(raw, dict) and {str(key).lower() for key in raw} & _VERDICT_KEYS:
            return _lenient_review(raw)
    verdict: Verdict = "revise" if _REVISE.search(text) else "accept"
    reason = " ".join(text.split())[:500]
    return Review(verdict=verdict, reasons=[reason] if reason else [])


def _lenient_review(raw: dict[str, Any]) -> Review:
    fields = {str(key).lower(): value for key, value in raw.items()}
    said = next((fields[key] for key in ("verdict", "decision", "status") if fields.get(key)), None)
    verdict_text = str(said or "").lower()
    if "approved" in fields and not verdict_text:
        verdict_text = "accept" if fields["approved"] is True else "revise"
    verdict: Verdict = "revise" if _REVISE.search(verdict_text) else "accept"
    reasons_raw = fields.get("reasons", fields.get("feedback", fields.get("comments", [])))
    reasons = _strings(reasons_raw)
    risks: list[Risk] = []
    for item in fields.get("risks", []) if isinstance(fields.get("risks"), list) else []:
        if isinstance(item, str) and item.strip():
            risks.append(Risk(risk=item.strip()))
        elif isinstance(item, dict) and str(item.get("risk", "")).strip():
            severity = str(item.get("severity", "medium")).lower()
            risks.append(Risk(risk=str(item["risk"]).strip(), severity=_SEVERITIES.get(severity, "medium")))
    return Review(verdict=verdict, reasons=reasons, risks=risks)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, list):
        return [str(item).strip() for item in value if str(item).strip()]
    return []
