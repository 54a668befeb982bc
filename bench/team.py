"""Team pipeline wall time and overhead per phase, against the raw work the pipeline is made of.

The system path: a WebSocket `@team <task>` to `agentbus up` (the `dev_team`:
a lead and three members, so 4 phases, two of them concurrent) → session
actor → team actor → for the plan, each phase's result and review, and the
synthesis (10 model calls): a NATS request to an expert actor, the offline
provider streaming chunks onto NATS, the events appended and relayed →
`final_answer`. The baseline is the same work with no system around it, in
this process and one after the other: the same 10 offline-provider
generations on the same prompts, and one raw asyncpg INSERT per event the
team recorded. Overhead per phase is the difference in wall time divided by
the phases.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass

import asyncpg
import msgspec

from actors.llm import OfflineProvider, TextDelta
from actors.team.plans import parse_plan
from actors.team.prompts import llm_request
from cli.settings import Endpoints
from projections.database import asyncpg_dsn
from schemas.events import PlanPhase, TeamExpert
from schemas.experts import ExecutePhase, PhaseOutput, PlanTeam, ReviewPhase, SynthesizeTeam, TeamRequest

from ._services import runs_on_one_session
from .append import _RAW_DDL, _RAW_INSERT, RAW_TABLE

TASK = "Build a user login feature with email and password"
LEAD = TeamExpert(expert_id="x-product_lead", name="product_lead", role="lead")
MEMBERS = [TeamExpert(expert_id=f"x-{name}", name=name) for name in ("architect", "engineer", "qa")]
TIMEOUT = 120.0


class TeamError(RuntimeError):
    """A team did not run as the protocol says."""


@dataclass(frozen=True, slots=True)
class TeamRun:
    wall: float  # seconds from the message sent to the final answer
    phases: int
    events: int  # events the team and its session recorded for the message


async def measure_teams(endpoints: Endpoints, teams: int, *, warmup: int = 1) -> list[TeamRun]:
    """Run `warmup + teams` teams in sequence on one session; return the measured ones."""
    return await runs_on_one_session(endpoints, _team, teams, warmup=warmup, timeout=TIMEOUT)


async def _team(ws) -> TeamRun:
    sent = time.perf_counter()
    await ws.send(json.dumps({"type": "message", "content": f"@team {TASK}"}))
    phases = events = 0
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        kind = frame.get("type")
        events += frame.get("position") is not None
        if kind == "phase_completed":
            phases += 1
        elif kind == "final_answer":
            if phases != 4:
                raise TeamError(f"expected 4 phases completed, got {phases}: {frame}")
            return TeamRun(wall=time.perf_counter() - sent, phases=phases, events=events)
        elif kind == "error":
            raise TeamError(f"error frame during the team: {frame}")


async def measure_raw(database_url: str, teams: int, events: int) -> list[float]:
    """Time the baseline `teams` times: the pipeline's generations and `events` raw INSERTs, in sequence."""
    provider = OfflineProvider(delay=0.0)
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for statement in _RAW_DDL:
            await conn.execute(statement)
        walls: list[float] = []
        for _ in range(teams):
            started = time.perf_counter()
            texts = await _pipeline(provider)
            stream = f"team-{uuid.uuid4().hex}"
            for version in range(1, events + 1):
                data = msgspec.json.encode({"content": texts[version % len(texts)]}).decode()
                await conn.execute(_RAW_INSERT, stream, version, "bench", "team_event", 1, data, "{}", uuid.uuid4())
            walls.append(time.perf_counter() - started)
        await conn.execute(f"DROP TABLE {RAW_TABLE}")
        return walls
    finally:
        await conn.close()


async def _pipeline(provider: OfflineProvider) -> list[str]:
    """Generate what a team says, as its experts would (same prompts): plan, each phase and review, synthesis."""
    common = {"team_id": "t", "session_id": "s", "model": "offline", "task": TASK}
    plan_text = await _generate(provider, PlanTeam(expert_id=LEAD.expert_id, expert=LEAD, members=MEMBERS, **common))
    phases: list[PlanPhase] = parse_plan(plan_text) or []
    texts, outputs = [plan_text], {}
    for phase in phases:
        member = next(m for m in MEMBERS if m.name == phase.assignee)
        inputs = [outputs[dep] for dep in phase.depends_on if dep in outputs]
        execute = ExecutePhase(expert_id=member.expert_id, expert=member, phase=phase, inputs=inputs, **common)
        result = await _generate(provider, execute)
        outputs[phase.id] = PhaseOutput(
            phase_id=phase.id, phase_name=phase.name, expert_name=member.name, content=result
        )
        review = ReviewPhase(expert_id=LEAD.expert_id, expert=LEAD, phase=phase, result=result, **common)
        texts += [result, await _generate(provider, review)]
    synthesis = SynthesizeTeam(expert_id=LEAD.expert_id, expert=LEAD, results=list(outputs.values()), **common)
    texts.append(await _generate(provider, synthesis))
    return texts


async def _generate(provider: OfflineProvider, request: TeamRequest) -> str:
    return "".join([d.text async for d in provider.stream(llm_request(request)) if isinstance(d, TextDelta)])
