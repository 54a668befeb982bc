"""The team's decisions as pure functions, driven by a simulator that runs steps like the actor's driver does.

`Run` is `actors/team/actor.py` without I/O: it keeps every step `next_steps`
names in flight, completes them in an order it is given (to emulate
concurrent phases), drops a completed step that is no longer due (as
`TeamActor._step_done` does), decides it with a scripted answer (the plan as
`TeamActor._decide` makes it) and folds the events back with `evolve`. A
crash is a new `Run` from the events recorded so far.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.team.logic import (
    NO_RESULT,
    Execute,
    Plan,
    ReviewStep,
    StartPhase,
    Step,
    Synthesize,
    TeamState,
    decide_cancel,
    decide_intervention,
    decide_phase_failure,
    decide_plan,
    decide_plan_failure,
    decide_result,
    decide_review,
    decide_start,
    decide_synthesis,
    decide_unreviewed,
    evolve,
    final_answer,
    next_steps,
)
from actors.team.plans import Review, Risk, normalize, parse_plan
from schemas.events import (
    AnyEvent,
    CollaborationContractDefined,
    CollaborationNotice,
    ExpertResult,
    ExpertStep,
    PhaseCompleted,
    PhaseFailed,
    PhaseStarted,
    PlanPhase,
    PlanStep,
    PlanUpdate,
    Replanning,
    ReviewResult,
    RiskFlagged,
    TeamDissolved,
    TeamExpert,
    TeamFormed,
    TeamSynthesis,
    UserIntervention,
)
from schemas.events.team import Verdict
from schemas.experts import ExpertAnswer

E = TypeVar("E")

TEAM = "t1"
TASK = "build a URL shortener"
LEAD = TeamExpert(expert_id="t1-lead", name="Lead", role="lead")
MEMBERS = [
    TeamExpert(expert_id="t1-architect", name="Architect"),
    TeamExpert(expert_id="t1-developer", name="Developer"),
    TeamExpert(expert_id="t1-tester", name="Tester"),
]
EXPERTS = [LEAD, *MEMBERS]

PIPELINE = [
    ("design", "Design", "architect", []),
    ("test-plan", "Test plan", "Tester", []),
    ("implementation", "Implementation", "DEVELOPER", ["design"]),
    ("verification", "Verification", "tester", ["implementation", "test-plan"]),
]
PHASE_IDS = [id_ for id_, *_ in PIPELINE]


def lead_plan(failed: set[str]) -> str:
    """The lead's JSON plan: the dev pipeline, each phase that failed replaced by `<id>-again`."""

    def renamed(id_: str) -> str:
        return f"{id_}-again" if id_ in failed else id_

    phases = [
        {"id": renamed(id_), "title": name, "owner": owner, "dependencies": [renamed(dep) for dep in deps]}
        for id_, name, owner, deps in PIPELINE
    ]
    return "Here is the plan:\n```json\n" + json.dumps({"phases": phases}) + "\n```"


def result_of(phase_id: str, attempt: int) -> str:
    return f"{phase_id}: result {attempt}"


@dataclass
class Script:
    """What the experts answer: phases that get no answer, how many reviews of a phase say revise."""

    fail: frozenset[str] = frozenset()
    revise: dict[str, int] = field(default_factory=dict)
    synthesis: str = "The shortener is designed, built and verified."
    max_revisions: int = 1
    max_replans: int = 2


def replay(events: Sequence[AnyEvent]) -> TeamState:
    state = TeamState(team_id=TEAM)
    for event in events:
        evolve(state, event)
    return state


def fifo(n: int) -> int:
    return 0


class Run:
    """A team driven to its end by scripted experts; `events` is its stream."""

    def __init__(self, script: Script, events: Sequence[AnyEvent] = ()) -> None:
        self.script = script
        self.events: list[AnyEvent] = list(events)
        self.state = replay(self.events)
        self.in_flight: list[Step] = []

    def record(self, events: list[AnyEvent]) -> None:
        for event in events:
            evolve(self.state, event)
        self.events += events

    def step(self, pick: Callable[[int], int] = fifo) -> Step | None:
        """Complete one step in flight (the `pick`-th), after starting those newly due; None when none is left."""
        self.in_flight += [step for step in next_steps(self.state) if step not in self.in_flight]
        if not self.in_flight:
            return None
        step = self.in_flight.pop(pick(len(self.in_flight)))
        if step in next_steps(self.state):
            self.record(self.decide(step))
        return step

    def finish(self, pick: Callable[[int], int] = fifo) -> Run:
        for _ in range(500):
            if self.step(pick) is None:
                return self
        raise AssertionError("the team never ended")

    def decide(self, step: Step) -> list[AnyEvent]:
        state, script = self.state, self.script
        match step:
            case Plan():
                answer = ExpertAnswer(content=lead_plan(failed_ids(self.events)), prompt_tokens=50)
                kept = [p.phase for p in state.phases.values() if p.status in ("completed", "running")]
                parsed = parse_plan(answer.content)
                assert parsed is not None
                phases = normalize(parsed, MEMBERS, lead=LEAD, max_phases=8, keep=kept)
                return decide_plan(state, step, phases, TASK, EXPERTS, answer)
            case StartPhase():
                return decide_start(state, step)
            case Execute(phase_id=phase_id, attempt=attempt):
                if phase_id in script.fail:
                    return decide_phase_failure(state, step, "the expert did not answer", script.max_replans)
                return decide_result(state, step, ExpertAnswer(content=f"  {result_of(phase_id, attempt)}\n"))
            case ReviewStep(phase_id=phase_id, attempt=attempt):
                verdict: Verdict = "revise" if attempt <= script.revise.get(phase_id, 0) else "accept"
                review = Review(verdict=verdict, reasons=[f"{verdict} attempt {attempt}"])
                return decide_review(state, step, review, ExpertAnswer(content=verdict), script.max_revisions)
            case Synthesize():
                return decide_synthesis(state, ExpertAnswer(content=script.synthesis))
        raise AssertionError(f"unknown step {step!r}")


def failed_ids(events: Sequence[AnyEvent]) -> set[str]:
    return {event.phase_id for event in events if isinstance(event, PhaseFailed)}


def of_type(events: Sequence[AnyEvent], kind: type[E]) -> list[E]:
    return [event for event in events if isinstance(event, kind)]


def planned() -> Run:
    """A team whose first plan, the dev pipeline, is recorded."""
    run = Run(Script())
    assert run.step() == Plan(revision=1)
    return run


def advance(run: Run, *steps: Step) -> Run:
    """Record `steps` in order, each checked to be due."""
    for step in steps:
        assert step in next_steps(run.state), f"{step} is not due: {next_steps(run.state)}"
        run.record(run.decide(step))
    return run


def started_both() -> Run:
    return advance(planned(), StartPhase(phase_id="design"), StartPhase(phase_id="test-plan"))


# --- planning and order -----------------------------------------------------------------------------------------


def test_the_first_step_of_a_new_team_is_its_first_plan() -> None:
    assert next_steps(TeamState(team_id=TEAM)) == [Plan(revision=1)]


def test_the_first_plan_forms_the_team_and_records_the_plan_its_contract_and_its_steps() -> None:
    run = planned()
    assert [type(e) for e in run.events] == [TeamFormed, PlanUpdate, CollaborationContractDefined, *[PlanStep] * 4]
    formed, update = of_type(run.events, TeamFormed)[0], of_type(run.events, PlanUpdate)[0]
    assert (formed.lead_expert, formed.task, formed.prompt_tokens, update.revision) == ("Lead", TASK, 50, 1)
    assert [(s.step, s.phase_id, s.assignee, s.depends_on) for s in of_type(run.events, PlanStep)] == [
        (1, "design", "Architect", []),
        (2, "test-plan", "Tester", []),
        (3, "implementation", "Developer", ["design"]),
        (4, "verification", "Tester", ["implementation", "test-plan"]),
    ]


def test_after_the_plan_the_two_independent_phases_start_at_once() -> None:
    assert next_steps(planned().state) == [StartPhase(phase_id="design"), StartPhase(phase_id="test-plan")]


def test_two_started_phases_execute_concurrently() -> None:
    assert next_steps(started_both().state) == [
        Execute(phase_id="design", attempt=1),
        Execute(phase_id="test-plan", attempt=1),
    ]


def test_a_phase_starts_with_the_results_of_its_dependencies_handed_over_and_its_brief() -> None:
    run = advance(
        started_both(),
        Execute(phase_id="design", attempt=1),
        ReviewStep(phase_id="design", attempt=1),
        StartPhase(phase_id="implementation"),
    )
    started, notice, brief = run.events[-3:]
    assert isinstance(started, PhaseStarted) and started.expert_name == "Developer"
    assert isinstance(notice, CollaborationNotice)
    assert (notice.from_phase_id, notice.to_expert, notice.content) == ("design", "Developer", "design: result 1")
    assert isinstance(brief, ExpertStep) and brief.step == 1 and "building on Design" in brief.content


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_in_any_completion_order_no_phase_starts_before_its_dependencies_completed(data: st.DataObject) -> None:
    run = Run(Script(revise={"design": 1, "test-plan": data.draw(st.integers(0, 2))}))
    while True:
        for step in next_steps(run.state):
            if isinstance(step, StartPhase):
                deps = run.state.phases[step.phase_id].phase.depends_on
                assert all(run.state.phases[dep].status == "completed" for dep in deps)
        if run.step(lambda n: data.draw(st.integers(0, n - 1))) is None:
            break
    index = {(type(e).__name__, getattr(e, "phase_id", "")): i for i, e in enumerate(run.events)}
    assert index["PhaseStarted", "implementation"] > index["PhaseCompleted", "design"]
    assert index["PhaseStarted", "verification"] > index["PhaseCompleted", "implementation"]
    assert index["PhaseStarted", "verification"] > index["PhaseCompleted", "test-plan"]


# --- a whole run and its answer ---------------------------------------------------------------------------------


def test_a_whole_run_completes_each_phase_once_then_ends_with_the_synthesis_and_team_dissolved_completed() -> None:
    run = Run(Script()).finish()
    assert [e.phase_id for e in of_type(run.events, PhaseCompleted)] == [
        "design",
        "test-plan",
        "implementation",
        "verification",
    ]
    synthesis, dissolved = run.events[-2:]
    assert isinstance(synthesis, TeamSynthesis) and synthesis.content == Script().synthesis
    assert dissolved == TeamDissolved(team_id=TEAM, status="completed")
    assert len(of_type(run.events, TeamSynthesis)) == len(of_type(run.events, TeamDissolved)) == 1
    assert final_answer(run.state) == Script().synthesis
    assert next_steps(run.state) == []


def test_with_an_empty_synthesis_the_answer_is_one_section_per_phase_result() -> None:
    run = Run(Script(synthesis="  \n", revise={"implementation": 1})).finish()
    assert final_answer(run.state) == "\n\n".join(
        [
            "### Design\n\ndesign: result 1",
            "### Test plan\n\ntest-plan: result 1",
            "### Implementation\n\nimplementation: result 2",
            "### Verification\n\nverification: result 1",
        ]
    )


def test_a_team_without_any_result_answers_no_result() -> None:
    run = planned()
    run.record(decide_cancel(run.state))
    assert final_answer(run.state) == NO_RESULT


def test_a_lead_that_could_not_plan_ends_the_team_as_failed() -> None:
    [dissolved] = decide_plan_failure(TeamState(team_id=TEAM), "Lead did not answer")
    assert dissolved == TeamDissolved(
        team_id=TEAM, status="failed", reason="the lead could not plan: Lead did not answer"
    )


# --- crash and resume -------------------------------------------------------------------------------------------


def results_by_incarnation(events: Sequence[AnyEvent]) -> list[tuple[str, int, int]]:
    """Each result as (phase, how many times the phase had started, attempt)."""
    starts: Counter[str] = Counter()
    seen = []
    for event in events:
        if isinstance(event, PhaseStarted):
            starts[event.phase_id] += 1
        elif isinstance(event, ExpertResult):
            seen.append((event.phase_id, starts[event.phase_id], event.attempt))
    return seen


@settings(max_examples=300, deadline=None)
@given(
    st.data(),
    st.frozensets(st.sampled_from(PHASE_IDS), max_size=2),
    st.fixed_dictionaries({id_: st.integers(0, 2) for id_ in PHASE_IDS}),
)
def test_a_run_crashed_at_any_points_and_resumed_from_its_events_does_each_phase_once_with_the_same_plan(
    data: st.DataObject, fail: frozenset[str], revise: dict[str, int]
) -> None:
    script = Script(fail=fail, revise=revise)
    uninterrupted = Run(script).finish()
    run, crashes = Run(script), 0
    for _ in range(500):
        if data.draw(st.integers(0, 7), label="crash now") == 0:
            resumed = Run(script, run.events)  # the steps in flight are lost; only the recorded events remain
            assert resumed.state == run.state, "replaying the events gives the state the team lived"
            run, crashes = resumed, crashes + 1
        if run.step(lambda n: data.draw(st.integers(0, n - 1), label="completes next")) is None:
            break
    events = run.events
    completed = [e.phase_id for e in of_type(events, PhaseCompleted)]
    assert len(completed) == len(set(completed)), "each phase completed exactly once"
    assert set(completed) == {e.phase_id for e in of_type(uninterrupted.events, PhaseCompleted)}
    results = results_by_incarnation(events)
    assert len(results) == len(set(results)), "no attempt's result recorded twice"
    assert Counter(e.phase_id for e in of_type(events, PhaseStarted)) == Counter(set(completed) | fail)
    first_plans = [of_type(r.events, PlanUpdate)[0].plan_phases for r in (run, uninterrupted)]
    assert first_plans[0] == first_plans[1]
    final_plans = [{p.id for p in of_type(r.events, PlanUpdate)[-1].plan_phases} for r in (run, uninterrupted)]
    assert final_plans[0] == final_plans[1]
    if not fail:
        assert of_type(events, PlanUpdate) == of_type(uninterrupted.events, PlanUpdate)
    assert [type(e) for e in events[-2:]] == [TeamSynthesis, TeamDissolved]
    assert final_answer(run.state) == final_answer(uninterrupted.state)


# --- reviews ----------------------------------------------------------------------------------------------------


def reviewed_once() -> Run:
    """Design's first result, reviewed `revise` (max_revisions=1)."""
    run = advance(started_both(), Execute(phase_id="design", attempt=1))
    step = ReviewStep(phase_id="design", attempt=1)
    assert step in next_steps(run.state)
    review = Review(verdict="revise", reasons=["add the API"])
    run.record(decide_review(run.state, step, review, ExpertAnswer(content="revise"), 1))
    return run


def test_a_revise_review_on_attempt_1_asks_for_a_revision_and_attempt_2_follows() -> None:
    run = reviewed_once()
    review, revising = run.events[-2:]
    assert isinstance(review, ReviewResult) and (review.verdict, review.attempt) == ("revise", 1)
    assert isinstance(revising, ExpertStep) and revising.content == "Revising Design after review: add the API"
    assert revising.step == 2
    assert Execute(phase_id="design", attempt=2) in next_steps(run.state)
    assert run.state.phases["design"].status == "running"


def test_a_second_revise_with_max_revisions_1_completes_the_phase_unaccepted() -> None:
    run = advance(reviewed_once(), Execute(phase_id="design", attempt=2))
    step = ReviewStep(phase_id="design", attempt=2)
    events = decide_review(run.state, step, Review(verdict="revise"), ExpertAnswer(content="r"), 1)
    assert events[-1] == PhaseCompleted(
        team_id=TEAM, phase_id="design", phase_name="Design", attempts=2, accepted=False
    )
    assert not of_type(events, ExpertStep)


def test_risks_in_a_review_are_flagged_by_the_lead() -> None:
    run = advance(started_both(), Execute(phase_id="design", attempt=1))
    review = Review(verdict="accept", risks=[Risk(risk="slow", severity="high")])
    events = decide_review(run.state, ReviewStep(phase_id="design", attempt=1), review, ExpertAnswer(content="ok"), 1)
    assert [type(e) for e in events] == [ReviewResult, RiskFlagged, PhaseCompleted]
    [flagged] = of_type(events, RiskFlagged)
    assert (flagged.phase_id, flagged.risk, flagged.severity, flagged.raised_by) == ("design", "slow", "high", "Lead")


def test_a_phase_the_lead_could_not_review_completes_unaccepted_with_the_missing_review_flagged() -> None:
    run = advance(started_both(), Execute(phase_id="design", attempt=1))
    flagged, completed = decide_unreviewed(run.state, ReviewStep(phase_id="design", attempt=1), "Lead did not answer")
    assert isinstance(flagged, RiskFlagged) and flagged.risk == "Design was not reviewed: Lead did not answer"
    assert isinstance(completed, PhaseCompleted) and not completed.accepted


# --- failed phases and replanning -------------------------------------------------------------------------------


def design_failed(max_replans: int = 2) -> Run:
    run = started_both()
    run.script = Script(fail=frozenset({"design"}), max_replans=max_replans)
    return advance(run, Execute(phase_id="design", attempt=1))


def test_a_failed_phase_records_the_failure_and_a_replanning_while_replans_remain() -> None:
    failed, replanning = design_failed().events[-2:]
    assert failed == PhaseFailed(
        team_id=TEAM, phase_id="design", phase_name="Design", reason="the expert did not answer"
    )
    assert replanning == Replanning(
        team_id=TEAM, reason="phase Design failed: the expert did not answer", trigger="phase_failed"
    )


def test_a_replan_waits_for_the_phases_under_way_then_plans_revision_2_for_the_failure() -> None:
    run = design_failed()
    assert next_steps(run.state) == [Execute(phase_id="test-plan", attempt=1)]
    advance(run, Execute(phase_id="test-plan", attempt=1))
    assert next_steps(run.state) == [ReviewStep(phase_id="test-plan", attempt=1)]
    advance(run, ReviewStep(phase_id="test-plan", attempt=1))
    assert next_steps(run.state) == [Plan(revision=2, reason="phase Design failed: the expert did not answer")]


def test_after_a_replan_replacing_the_failed_phase_the_run_finishes_without_redoing_done_phases() -> None:
    run = design_failed().finish()
    [_, replan] = of_type(run.events, PlanUpdate)
    assert [(p.id, p.depends_on) for p in replan.plan_phases] == [
        ("test-plan", []),
        ("design-again", []),
        ("implementation", ["design-again"]),
        ("verification", ["implementation", "test-plan"]),
    ]
    assert (replan.revision, replan.reason) == (2, "phase Design failed: the expert did not answer")
    assert [e.phase_id for e in of_type(run.events, PhaseStarted)].count("test-plan") == 1
    assert sorted(e.phase_id for e in of_type(run.events, PhaseCompleted)) == [
        "design-again",
        "implementation",
        "test-plan",
        "verification",
    ]
    assert run.events[-1] == TeamDissolved(team_id=TEAM, status="completed")


def test_a_phase_failing_with_the_replans_used_up_dissolves_the_team_as_failed_with_the_reason() -> None:
    run = design_failed(max_replans=1)
    run.script = Script(fail=frozenset({"design", "design-again"}), max_replans=1)
    run.finish()
    assert run.events[-1] == TeamDissolved(
        team_id=TEAM,
        status="failed",
        reason="phase Design failed (the expert did not answer) and the 1 replans allowed are used up",
    )
    assert len(of_type(run.events, Replanning)) == 1 and not of_type(run.events, TeamSynthesis)
    assert next_steps(run.state) == []


def test_two_phases_failing_before_the_lead_replans_use_one_replan() -> None:
    """With max_replans=1, design and test-plan failing concurrently are covered by the one replan the lead makes."""
    run = design_failed(max_replans=1)
    events = decide_phase_failure(run.state, Execute(phase_id="test-plan", attempt=1), "Tester did not answer", 1)
    run.record(events)
    assert not of_type(events, TeamDissolved)
    [step] = next_steps(run.state)
    assert isinstance(step, Plan) and step.revision == 2


# --- interventions and cancel -----------------------------------------------------------------------------------


def test_an_intervention_is_recorded_with_a_replanning_while_replans_remain_and_work_is_open() -> None:
    run = started_both()
    events = decide_intervention(run.state, "use Go", "k1", max_replans=2)
    assert events == [
        UserIntervention(target_id=TEAM, content="use Go", idempotency_key="k1"),
        Replanning(team_id=TEAM, reason="user intervention: use Go", trigger="intervention"),
    ]
    run.record(events)
    assert next_steps(run.state) == [Execute(phase_id="design", attempt=1), Execute(phase_id="test-plan", attempt=1)]


def test_an_intervention_is_taken_once_per_idempotency_key() -> None:
    run = started_both()
    run.record(decide_intervention(run.state, "use Go", "k1", max_replans=2))
    assert decide_intervention(run.state, "use Go", "k1", max_replans=2) == []
    assert run.state.interventions == ["use Go"]


def test_a_second_intervention_during_a_pending_replan_is_recorded_without_another_replanning() -> None:
    run = started_both()
    run.record(decide_intervention(run.state, "use Go", "k1", max_replans=2))
    assert decide_intervention(run.state, "and Redis", None, max_replans=2) == [
        UserIntervention(target_id=TEAM, content="and Redis")
    ]


def test_an_intervention_with_the_replans_used_up_is_recorded_without_a_replanning() -> None:
    run = started_both()
    assert [type(e) for e in decide_intervention(run.state, "use Go", "k1", max_replans=0)] == [UserIntervention]


def test_an_intervention_once_every_phase_is_done_is_recorded_without_a_replanning() -> None:
    run = Run(Script())
    for _ in range(100):
        if next_steps(run.state) == [Synthesize()]:
            break
        run.step()
    assert [type(e) for e in decide_intervention(run.state, "use Go", "k1", max_replans=2)] == [UserIntervention]


def test_an_intervention_replan_plans_the_next_revision_for_the_users_words_once_the_phases_under_way_end() -> None:
    run = started_both()
    run.record(decide_intervention(run.state, "use Go", "k1", max_replans=2))
    advance(run, Execute(phase_id="design", attempt=1), ReviewStep(phase_id="design", attempt=1))
    advance(run, Execute(phase_id="test-plan", attempt=1), ReviewStep(phase_id="test-plan", attempt=1))
    assert next_steps(run.state) == [Plan(revision=2, reason="user intervention: use Go")]
    run.finish()
    assert [e.phase_id for e in of_type(run.events, PhaseStarted)] == PHASE_IDS
    assert run.events[-1] == TeamDissolved(team_id=TEAM, status="completed")


def test_no_intervention_is_taken_before_the_team_formed_or_after_it_ended() -> None:
    assert decide_intervention(TeamState(team_id=TEAM), "use Go", "k1", max_replans=2) == []
    run = Run(Script()).finish()
    assert decide_intervention(run.state, "use Go", "k1", max_replans=2) == []


def test_cancel_dissolves_a_running_team_once_and_then_nothing_is_due() -> None:
    run = started_both()
    events = decide_cancel(run.state)
    assert events == [TeamDissolved(team_id=TEAM, status="cancelled", reason="cancelled by the user")]
    run.record(events)
    assert decide_cancel(run.state) == []
    assert next_steps(run.state) == []


def test_a_phase_in_a_replan_keeps_its_state_when_done_or_under_way_and_starts_afresh_otherwise() -> None:
    run = advance(started_both(), Execute(phase_id="design", attempt=1), ReviewStep(phase_id="design", attempt=1))
    before = run.state.phases["design"], run.state.phases["test-plan"]
    phases = [PlanPhase(id=p.phase.id, name=p.phase.name, assignee=p.phase.assignee) for p in before]
    new = PlanPhase(id="docs", name="Docs", assignee="Architect")
    evolve(run.state, PlanUpdate(team_id=TEAM, revision=2, plan_phases=[*phases, new]))
    assert (run.state.phases["design"], run.state.phases["test-plan"]) == before
    assert run.state.phases["docs"].status == "pending" and "implementation" not in run.state.phases
