"""A team view as Markdown, for `agentbus replay team` (re-exported by `projections.replay`)."""

from __future__ import annotations

from .teams import PhaseView, TeamView


def team_markdown(view: TeamView) -> str:
    """Render a team: task, experts, the plan table, each phase's work, risks, interventions, replans, synthesis, end."""
    lines = [f"# Team {view.team_id}", "", f"**Task:** {view.task or '(not formed)'}"]
    lines += [
        f"**Status:** {view.status} · up to position {view.position} · plan revision {view.revision}"
        + (f" · lead {view.lead_expert}" if view.lead_expert else ""),
        "",
        "## Experts",
        "",
    ]
    for expert in view.experts:
        avatar = f"{expert.avatar} " if expert.avatar else ""
        lead = " (lead)" if expert.role == "lead" else ""
        lines.append(f"- {avatar}**{expert.name}**{lead} `{expert.expert_id}`: {expert.persona}")
    lines += ["", f"## Plan (revision {view.revision})", ""]
    lines += ["| # | Phase | Assignee | Depends on | Status |", "|---|---|---|---|---|"]
    for number, phase in enumerate(view.plan, start=1):
        depends = ", ".join(f"`{_cell(d)}`" for d in phase.depends_on) or "—"
        lines.append(
            f"| {phase.step or number} | {_cell(phase.name)} (`{_cell(phase.id)}`) | {_cell(phase.assignee)} "
            f"| {depends} | {_status(phase)} |"
        )
    for revision in view.revisions:
        if revision.reason:
            lines += ["", f"_Revision {revision.revision}: {revision.reason}_"]
    if view.contracts:
        lines += ["", f"## Contracts (revision {view.contracts_revision})", ""]
        for contract in view.contracts:
            consumers = ", ".join(contract.consumers) or "—"
            lines.append(f"- `{contract.phase_id}` {contract.owner} → {consumers}: {contract.deliverable}")
    lines += ["", "## Phases"]
    for phase in view.plan:
        lines += _phase(phase)
    if view.off_plan:
        lines += ["", "## No longer in the plan"]
        for phase in view.off_plan:
            lines += _phase(phase)
    if view.risks:
        lines += ["", "## Risks", ""]
        for risk in view.risks:
            where = f" (phase `{risk.phase_id}`)" if risk.phase_id else ""
            by = f", raised by {risk.raised_by}" if risk.raised_by else ""
            lines.append(f"- **{risk.severity}**{where}: {risk.risk}{by}")
    if view.interventions:
        lines += ["", "## User interventions", ""]
        lines += [f"> {i.content} _(position {i.position})_" for i in view.interventions]
    if view.replans:
        lines += ["", "## Replanning", ""]
        lines += [f"- after {r.trigger.replace('_', ' ')}: {r.reason} _(position {r.position})_" for r in view.replans]
    if view.synthesis is not None:
        cut = " (cut at its limit)" if view.synthesis.truncated else ""
        lines += ["", f"## Synthesis{cut}", "", view.synthesis.content or "(empty)"]
    if view.ending is not None:
        reason = f": {view.ending.reason}" if view.ending.reason else ""
        lines += ["", f"**Ended ({view.ending.status}){reason}**"]
    return "\n".join(lines) + "\n"


def _phase(phase: PhaseView) -> list[str]:
    by = f" — {phase.expert_name or phase.assignee}" if phase.expert_name or phase.assignee else ""
    lines = ["", f"### {phase.name or phase.id} (`{phase.id}`){by}: {_status(phase)}"]
    if phase.goal:
        lines += ["", f"_Goal:_ {phase.goal}"]
    done: list[tuple[int, str]] = [
        (h.position, f"> **Hand-off from {h.from_expert} (`{h.from_phase_id}`):** {h.content}") for h in phase.handoffs
    ]
    done += [(s.position, f"**Step {s.step} ({s.expert_name}):** {s.content}") for s in phase.steps]
    done += [
        (
            r.position,
            f"#### Result, attempt {r.attempt} ({r.expert_name}){' — cut' if r.truncated else ''}\n\n{r.content}",
        )
        for r in phase.results
    ]
    done += [
        (r.position, "\n".join([f"#### Review, attempt {r.attempt} ({r.reviewer}): {r.verdict}", *_reasons(r.reasons)]))
        for r in phase.reviews
    ]
    for _, text in sorted(done, key=lambda item: item[0]):
        lines += ["", text]
    if phase.failure is not None:
        lines += ["", f"**Failed:** {phase.failure}"]
    return lines


def _status(phase: PhaseView) -> str:
    if phase.status != "completed":
        return phase.status
    accepted = "accepted" if phase.accepted else "not accepted"
    return f"completed ({accepted}, {phase.attempts} attempt{'s' if phase.attempts != 1 else ''})"


def _reasons(reasons: list[str]) -> list[str]:
    return ["", *(f"- {reason}" for reason in reasons)] if reasons else []


def _cell(text: str) -> str:
    """`text` as one Markdown table cell: no pipe ends the cell, no newline ends the row."""
    return text.replace("|", "\\|").replace("\n", " ")
