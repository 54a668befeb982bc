"""The prompts a team's experts are given: the lead's plan and reviews as JSON, a member's phase, the synthesis.

Every prompt starts with `Task:`, `Expert:` and `Role:` lines (and `Phase:`,
`Goal:`, `Attempt:` for one phase), and quotes other work as one
`[<kind> <phase id>] <expert> (<phase name>): text` line per item; the offline
provider reads these lines back (see `llm.offline_team`).
"""

from __future__ import annotations

from schemas.experts import ExecutePhase, PhaseOutput, PlanTeam, ReviewPhase, SynthesizeTeam, TeamRequest

from ..llm import LLMMessage, LLMRequest
from ..llm.budget import estimate_tokens
from ..llm.protocol import Purpose

PLAN_KEYS = '{"phases": [{"id": str, "name": str, "goal": str, "assignee": str, "depends_on": [str]}]}'
REVIEW_KEYS = '{"verdict": "accept" | "revise", "reasons": [str], "risks": [{"risk": str, "severity": "low" | "medium" | "high"}]}'


def clip(text: str, tokens: int) -> str:
    """`text` cut to about `tokens` tokens (on one line), marked when cut."""
    flat = " ".join(text.split())
    limit = max(tokens, 1) * 4
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def bounded(outputs: list[PhaseOutput], budget: int) -> list[PhaseOutput]:
    """`outputs` with their contents clipped so that together they fit `budget` tokens."""
    if not outputs:
        return []
    share = max(budget // len(outputs), 16)
    return [
        PhaseOutput(
            phase_id=o.phase_id,
            phase_name=o.phase_name,
            expert_name=o.expert_name,
            status=o.status,
            content=clip(o.content, share) if estimate_tokens(o.content) > share else o.content,
        )
        for o in outputs
    ]


def output_line(kind: str, output: PhaseOutput) -> str:
    text = " ".join(output.content.split()) or "(no result yet)"
    return f"[{kind} {output.phase_id}] {output.expert_name} ({output.phase_name}): {text}"


def llm_request(request: TeamRequest) -> LLMRequest:
    """Build what to ask the model for `request`."""
    expert = request.expert
    body = [f"Task: {' '.join(request.task.split())}", f"Expert: {expert.name}", f"Role: {expert.role}"]
    purpose: Purpose
    match request:
        case PlanTeam():
            purpose = "team_plan"
            body += ["", "Team members:", *(f"- {m.name}: {m.persona}" for m in request.members)]
            if request.current:
                status = {o.phase_id: o.status for o in request.progress}
                body += ["", "Current plan (phases completed or running stay as they are):"]
                body += [
                    f"- {p.id} | {p.name} | {p.assignee} | {status.get(p.id, 'pending')} | depends on: "
                    + (", ".join(p.depends_on) or "nothing")
                    for p in request.current
                ]
                body += [output_line("result", o) for o in request.progress if o.content]
            if request.reason:
                body += ["", f"Replan because: {request.reason}"]
            instruction = (
                "As lead, plan the task as phases for the team members (3 to 6 phases; phases that do not "
                "depend on each other run at the same time). Reply with one JSON object only, no prose: " + PLAN_KEYS
            )
        case ExecutePhase():
            purpose = "team_phase"
            body += _phase_lines(request.phase.id, request.phase.name, request.phase.goal, request.attempt)
            if request.inputs:
                body += ["", "Results you build on:", *(output_line("input", o) for o in request.inputs)]
            if request.previous:
                body += ["", f"Your previous attempt: {' '.join(request.previous.split())}"]
            if request.review:
                body += ["", "The lead asked you to revise:", *(f"- {reason}" for reason in request.review)]
            instruction = (
                "Deliver the result of this phase from your expertise: concrete and complete, in Markdown. "
                "Build on the results above and take any user intervention into account."
            )
        case ReviewPhase():
            purpose = "team_review"
            body += _phase_lines(request.phase.id, request.phase.name, request.phase.goal, request.attempt)
            body += ["", "Result to review:", request.result]
            last = " This is the last attempt: revise only if the result is unusable." if request.final else ""
            instruction = (
                "As lead, review the result against the phase goal and the task. Accept it, or ask for a revision "
                f"with reasons, and name any risk you see.{last} Reply with one JSON object only: {REVIEW_KEYS}"
            )
        case SynthesizeTeam():
            purpose = "team_synthesis"
            body += ["", "Phase results:", *(output_line("result", o) for o in request.results)]
            instruction = (
                "As lead, write the team's final answer to the task from the phase results, in Markdown: "
                "what was decided and delivered, and what remains open."
            )
    if request.interventions:
        body += ["", "User interventions:", *(f"- {' '.join(text.split())}" for text in request.interventions)]
    body += ["", instruction]
    system = f"You are {expert.name}, a member of a team. {expert.persona}".strip()
    return LLMRequest(
        model=request.model,
        messages=[LLMMessage(role="user", content="\n".join(body))],
        system_prompt=system,
        purpose=purpose,
        max_tokens=request.max_tokens,
    )


def _phase_lines(phase_id: str, name: str, goal: str, attempt: int) -> list[str]:
    return [f"Phase: {phase_id} | {name}", f"Goal: {goal or name}", f"Attempt: {attempt}"]
