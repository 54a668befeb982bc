"""The offline provider's team answers: the lead's plan and reviews as JSON, members' results, the synthesis.

Deterministic and derived from the prompt (see `actors.team.prompts`). The
first plan is a pipeline over the members: the first designs, the last
writes the test plan at the same time, the ones between build on the design,
and the last verifies the build against the test plan (4 phases for the
`dev_team`); a lone member designs, builds and verifies, one after the other. Markers in the task steer it, so tests can provoke each path:
`[fail:<phase id>]` makes the member of that phase fail (a replanned phase
gets a new id, so it succeeds), `[revise:<phase id>]` makes the lead ask for
one revision of it, and `[malformed-plan]` makes the lead's JSON need repair.
"""

from __future__ import annotations

import re

import msgspec

from ..errors import ProviderError
from .protocol import LLMRequest

_PLAN_LINE = re.compile(
    r"^- (?P<id>\S+) \| (?P<name>.+?) \| (?P<assignee>\S+) \| (?P<status>\w+) \| depends on: (?P<deps>.*)$"
)
_OUTPUT = re.compile(r"^\[(?P<kind>input|result) (?P<id>\S+)\] (?P<expert>\S+) \((?P<name>.+?)\): (?P<text>.*)$")


class _Prompt:
    def __init__(self, request: LLMRequest) -> None:
        self.text = request.messages[-1].content if request.messages else ""
        lines = self.text.splitlines()
        fields = dict(line.split(": ", 1) for line in lines[:6] if ": " in line and not line.startswith("-"))
        self.task = fields.get("Task", "the task")
        self.expert = fields.get("Expert", "expert")
        phase_id, _, phase_name = fields.get("Phase", " | ").partition(" | ")
        self.phase_id, self.phase_name = phase_id.strip(), phase_name.strip()
        self.goal = fields.get("Goal", "")
        self.attempt = int(fields.get("Attempt", "1") or 1)
        self.members = [line[2:].split(":", 1)[0] for line in _section(lines, "Team members:")]
        self.plan = [m.groupdict() for line in lines if (m := _PLAN_LINE.match(line))]
        self.outputs = [m.groupdict() for line in lines if (m := _OUTPUT.match(line))]
        self.interventions = [line[2:] for line in _section(lines, "User interventions:")]
        self.revisions = [line[2:] for line in _section(lines, "The lead asked you to revise:")]

    def marked(self, marker: str) -> bool:
        return f"[{marker}:{self.phase_id}]" in self.task


def _section(lines: list[str], heading: str) -> list[str]:
    if heading not in lines:
        return []
    start = lines.index(heading) + 1
    section: list[str] = []
    for line in lines[start:]:
        if not line.startswith("- "):
            break
        section.append(line)
    return section


def team_answer(request: LLMRequest) -> str:
    """Compose the offline answer to a team prompt, by the request's purpose."""
    prompt = _Prompt(request)
    match request.purpose:
        case "team_plan":
            return _replan(prompt) if prompt.plan else _plan(prompt)
        case "team_review":
            return _review(prompt)
        case "team_synthesis":
            return _synthesis(prompt)
    return _result(prompt)


def _phase(id_: str, name: str, goal: str, assignee: str, depends_on: list[str]) -> dict[str, object]:
    return {"id": id_, "name": name, "goal": goal, "assignee": assignee, "depends_on": depends_on}


def _plan(prompt: _Prompt) -> str:
    members = prompt.members or [prompt.expert]
    first, last, middle = members[0], members[-1], members[1:-1] or members[:1]
    task = prompt.task
    if len(members) == 1:
        phases = [
            _phase("design", "Design", f"Design the solution for: {task}", first, []),
            _phase("implementation", "Implementation", f"Implement the design of: {task}", first, ["design"]),
            _phase("verification", "Verification", f"Verify the implementation of: {task}", first, ["implementation"]),
        ]
        return msgspec.json.encode({"phases": phases}).decode()
    phases = [
        _phase("design", "Design", f"Design the solution for: {task}", first, []),
        _phase("test-plan", "Test plan", f"Write the acceptance tests for: {task}", last, []),
    ]
    builds = []
    for index, member in enumerate(middle, start=1):
        build_id = "implementation" if len(middle) == 1 else f"implementation-{index}"
        builds.append(build_id)
        phases.append(_phase(build_id, "Implementation", f"Implement the design of: {task}", member, ["design"]))
    phases.append(
        _phase("verification", "Verification", f"Verify the implementation of: {task}", last, [*builds, "test-plan"])
    )
    text = msgspec.json.encode({"phases": phases}).decode()
    if "[malformed-plan]" in task:
        # A trailing comma inside a code fence after some prose: what small models write.
        return f"Here is the plan:\n```json\n{text[:-2]},]}}\n```"
    return text


def _replan(prompt: _Prompt) -> str:
    """Keep the plan; a failed phase is handed to the next member under a new id, its dependents follow it."""
    members = prompt.members or [prompt.expert]
    renamed = {p["id"]: f"{p['id']}-retry" for p in prompt.plan if p["status"] == "failed"}
    phases = []
    for p in prompt.plan:
        deps = [renamed.get(d.strip(), d.strip()) for d in p["deps"].split(",") if d.strip() != "nothing"]
        assignee = p["assignee"]
        if p["id"] in renamed:
            assignee = members[(members.index(assignee) + 1) % len(members)] if assignee in members else members[0]
            phases.append(_phase(renamed[p["id"]], f"{p['name']} (retry)", p["name"], assignee, deps))
        else:
            phases.append(_phase(p["id"], p["name"], p["name"], assignee, deps))
    return msgspec.json.encode({"phases": phases}).decode()


def _result(prompt: _Prompt) -> str:
    if prompt.marked("fail"):
        raise ProviderError("offline", f"told to fail phase {prompt.phase_id} ([fail:{prompt.phase_id}] in the task)")
    parts = [f"## {prompt.phase_name}", "", f"{prompt.expert} on {prompt.goal or prompt.task}:"]
    parts += [f"- builds on {o['name']} by {o['expert']}" for o in prompt.outputs if o["kind"] == "input"]
    parts.append(f"- delivers {prompt.phase_name.lower()} for: {prompt.task}")
    parts += [f"- addresses the review: {reason}" for reason in prompt.revisions]
    parts += [f'- takes the user\'s point "{text}" into account' for text in prompt.interventions[-1:]]
    parts.append(f"- attempt {prompt.attempt}")
    return "\n".join(parts)


def _review(prompt: _Prompt) -> str:
    revise = prompt.marked("revise") and prompt.attempt == 1
    risks = []
    if "password" in prompt.task.lower() and prompt.phase_id == "design":
        risks.append(
            {"risk": "Passwords must be stored with a slow, salted hash (argon2id or bcrypt)", "severity": "high"}
        )
    reasons = (
        [f"{prompt.phase_name} needs the edge cases spelled out"] if revise else [f"{prompt.phase_name} meets its goal"]
    )
    return msgspec.json.encode(
        {"verdict": "revise" if revise else "accept", "reasons": reasons, "risks": risks}
    ).decode()


def _synthesis(prompt: _Prompt) -> str:
    lines = [f"# {prompt.task}", "", f"The team delivered {len(prompt.outputs)} phases:"]
    lines += [f"- **{o['name']}** ({o['expert']}): {o['text'][:160]}" for o in prompt.outputs]
    lines += [f'- The user\'s point "{text}" was taken into account.' for text in prompt.interventions[-1:]]
    return "\n".join(lines)
