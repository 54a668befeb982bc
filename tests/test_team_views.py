"""Replay of a team is a pure fold: a whole pipeline reads as its plan and phases, total on any sequence, `at` a prefix."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from projections._team_messages import team_message
from projections.replay import team_markdown
from projections.teams import TeamView, apply, fold, is_model_call, phases
from schemas import tag_of
from schemas.envelope import EventMeta, RecordedEvent
from schemas.events import (
    AnyEvent,
    CollaborationContractDefined,
    CollaborationNotice,
    Contract,
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
    UserMessage,
)
from schemas.events.team import Verdict

T = "t1"
EXPERTS = [
    TeamExpert(expert_id="lead", name="Lead", color="#000", role="lead"),
    TeamExpert(expert_id="dev", name="Dev", color="#111"),
    TeamExpert(expert_id="qa", name="QA", color="#222"),
]
PLAN_1 = [
    PlanPhase(id="p1", name="Research", goal="find options", assignee="Dev"),
    PlanPhase(id="p2", name="Design", goal="draw it", assignee="QA"),
    PlanPhase(id="p3", name="Build", goal="make it", assignee="Dev", depends_on=["p1", "p2"]),
]
PLAN_2 = [*PLAN_1[:2], PlanPhase(id="p4", name="Build again", assignee="QA", depends_on=["p1", "p2"])]


def _steps(revision: int, plan: list[PlanPhase]) -> list[AnyEvent]:
    return [
        CollaborationContractDefined(
            team_id=T, revision=revision, contracts=[Contract(phase_id="p1", owner="Dev", deliverable="notes", consumers=["Lead"])]
        ),
        *(
            PlanStep(team_id=T, revision=revision, step=n, phase_id=p.id, phase_name=p.name, assignee=p.assignee, depends_on=p.depends_on)
            for n, p in enumerate(plan, start=1)
        ),
    ]  # fmt: skip


def _start(phase: str, name: str, expert: TeamExpert) -> PhaseStarted:
    return PhaseStarted(
        team_id=T, phase_id=phase, phase_name=name, expert_id=expert.expert_id, expert_name=expert.name, expert_color=expert.color
    )  # fmt: skip


def _result(phase: str, expert: TeamExpert, content: str, attempt: int = 1) -> ExpertResult:
    return ExpertResult(
        team_id=T, phase_id=phase, expert_id=expert.expert_id, expert_name=expert.name, expert_color=expert.color,
        content=content, attempt=attempt, prompt_tokens=100, completion_tokens=20,
    )  # fmt: skip


def _review(phase: str, verdict: Verdict, attempt: int = 1, reasons: tuple[str, ...] = ()) -> ReviewResult:
    return ReviewResult(
        team_id=T, phase_id=phase, reviewer="Lead", verdict=verdict, reasons=list(reasons), attempt=attempt,
        prompt_tokens=50, completion_tokens=5,
    )  # fmt: skip


def pipeline() -> list[AnyEvent]:
    """A whole team, as its actor writes it: two phases at once, a revision, a failed phase replaced by a replan."""
    _, dev, qa = EXPERTS
    return [
        TeamFormed(team_id=T, task="Build a login", lead_expert="Lead", experts=EXPERTS, plan_phases=PLAN_1, prompt_tokens=30, completion_tokens=40),
        PlanUpdate(team_id=T, revision=1, plan_phases=PLAN_1, reason="initial plan"),
        *_steps(1, PLAN_1),
        _start("p1", "Research", dev),
        _start("p2", "Design", qa),
        ExpertStep(team_id=T, phase_id="p1", expert_id="dev", expert_name="Dev", content="brief p1", step=1),
        ExpertStep(team_id=T, phase_id="p2", expert_id="qa", expert_name="QA", content="brief p2", step=1),
        _result("p2", qa, "design v1"),
        _result("p1", dev, "research notes"),
        _review("p2", "revise", reasons=("too vague",)),
        _review("p1", "accept"),
        PhaseCompleted(team_id=T, phase_id="p1", phase_name="Research"),
        RiskFlagged(team_id=T, phase_id="p2", risk="scope creep", severity="high", raised_by="Lead"),
        ExpertStep(team_id=T, phase_id="p2", expert_id="qa", expert_name="QA", content="revise: too vague", step=2),
        _result("p2", qa, "design v2", attempt=2),
        _review("p2", "accept", attempt=2),
        PhaseCompleted(team_id=T, phase_id="p2", phase_name="Design", attempts=2),
        CollaborationNotice(team_id=T, from_phase_id="p1", from_expert="Dev", to_phase_id="p3", to_expert="Dev", content="research notes"),
        CollaborationNotice(team_id=T, from_phase_id="p2", from_expert="QA", to_phase_id="p3", to_expert="Dev", content="design v2"),
        _start("p3", "Build", dev),
        PhaseFailed(team_id=T, phase_id="p3", phase_name="Build", reason="no result"),
        Replanning(team_id=T, reason="phase p3 failed: no result"),
        UserIntervention(target_id=T, content="use OAuth", idempotency_key="k2"),
        PlanUpdate(team_id=T, revision=2, plan_phases=PLAN_2, reason="QA builds instead", prompt_tokens=60, completion_tokens=30),
        *_steps(2, PLAN_2),
        _start("p4", "Build again", qa),
        _result("p4", qa, "built with OAuth"),
        _review("p4", "accept"),
        PhaseCompleted(team_id=T, phase_id="p4", phase_name="Build again"),
        TeamSynthesis(team_id=T, content="Login built with OAuth.", prompt_tokens=80, completion_tokens=25),
        TeamDissolved(team_id=T, status="completed"),
    ]  # fmt: skip


def recorded(events: list[AnyEvent], start: int = 10, gaps: list[int] | None = None) -> list[RecordedEvent]:
    position, log = start, []
    for version, event in enumerate(events, start=1):
        position += gaps[version - 1] if gaps else 1
        log.append(
            RecordedEvent(
                position=position, stream=f"team-{T}", version=version, session_id="s1", event_id=str(version),
                schema=1, recorded_at=datetime(2026, 1, 1, tzinfo=UTC), meta=EventMeta(), event=event,
            )
        )  # fmt: skip
    return log


def _position(log: list[RecordedEvent], cls: type, **fields: object) -> int:
    return next(
        r.position for r in log if isinstance(r.event, cls) and all(getattr(r.event, k) == v for k, v in fields.items())
    )


def test_a_whole_pipeline_reads_as_its_latest_plan_with_each_phase_and_the_replaced_phase_kept_off_the_plan() -> None:
    log = recorded(pipeline())
    view = fold(T, log)
    assert (view.status, view.task, view.lead_expert, view.session_id, view.revision) == (
        "completed", "Build a login", "Lead", "s1", 2,
    )  # fmt: skip
    assert [e.name for e in view.experts] == ["Lead", "Dev", "QA"] and view.position == log[-1].position
    assert [(p.id, p.name, p.status, p.accepted, p.attempts, p.step) for p in view.plan] == [
        ("p1", "Research", "completed", True, 1, 1),
        ("p2", "Design", "completed", True, 2, 2),
        ("p4", "Build again", "completed", True, 1, 3),
    ]
    [p3] = view.off_plan
    assert (p3.id, p3.in_plan, p3.revision, p3.status, p3.failure, p3.expert_name) == (
        "p3", False, 1, "failed", "no result", "Dev",
    )  # fmt: skip
    assert [(h.from_phase_id, h.content) for h in p3.handoffs] == [("p1", "research notes"), ("p2", "design v2")]
    p1, p2, p4 = view.plan
    assert [(r.attempt, r.content) for r in p2.results] == [(1, "design v1"), (2, "design v2")]
    assert [(r.verdict, r.reasons, r.attempt) for r in p2.reviews] == [("revise", ["too vague"], 1), ("accept", [], 2)]
    assert [s.content for s in p2.steps] == ["brief p2", "revise: too vague"] and p2.expert_color == "#222"
    assert p4.depends_on == ["p1", "p2"] and p4.assignee == "QA" and p4.revision == 2 and p1.in_plan
    assert [(r.revision, r.phase_ids) for r in view.revisions] == [(1, ["p1", "p2", "p3"]), (2, ["p1", "p2", "p4"])]
    assert view.contracts_revision == 2 and view.contracts[0].deliverable == "notes"
    assert [(r.risk, r.severity, r.phase_id) for r in view.risks] == [("scope creep", "high", "p2")]
    assert [i.content for i in view.interventions] == ["use OAuth"]
    assert [(r.trigger, r.reason) for r in view.replans] == [("phase_failed", "phase p3 failed: no result")]
    assert view.synthesis is not None and view.synthesis.content == "Login built with OAuth."
    assert view.ending is not None and (view.ending.status, view.ending.position) == ("completed", log[-1].position)
    # team_formed, plan_update 2, four results, four reviews, the synthesis; plan_update 1 restates team_formed's plan.
    assert msgspec.to_builtins(view.usage) == {
        "calls": 11, "prompt_tokens": 30 + 60 + 4 * 100 + 4 * 50 + 80, "completion_tokens": 40 + 30 + 4 * 20 + 4 * 5 + 25,
        "truncated": 0,
    }  # fmt: skip
    assert [(e.position, e.type) for e in view.timeline] == [(r.position, tag_of(type(r.event))) for r in log]
    assert [e.phase_id for e in view.timeline if e.type == "collaboration_notice"] == ["p3", "p3"]


def test_at_a_position_shows_the_team_as_it_stood_two_phases_running_then_the_failure_before_the_replan() -> None:
    log = recorded(pipeline())
    running = fold(T, log, at=_position(log, PhaseStarted, phase_id="p2"))
    assert running.status == "executing" and [p.status for p in running.plan] == ["running", "running", "pending"]
    assert running.synthesis is None and running.ending is None and running.usage.calls == 1
    failed = fold(T, log, at=_position(log, PhaseFailed))
    assert [p.id for p in failed.plan] == ["p1", "p2", "p3"] and failed.off_plan == [] and failed.revision == 1
    assert failed.plan[2].status == "failed" and failed.plan[2].in_plan and failed.replans == []
    assert fold(T, log, at=0) == TeamView(team_id=T)


def test_the_markdown_shows_task_plan_table_each_phase_in_order_and_the_ending() -> None:
    markdown = team_markdown(fold(T, recorded(pipeline())))
    assert "**Task:** Build a login" in markdown and "| 3 | Build again (`p4`) | QA | `p1`, `p2` |" in markdown
    order = ["## Plan (revision 2)", "brief p2", "design v1", "Review, attempt 1 (Lead): revise", "- too vague",
             "design v2", "## No longer in the plan", "Hand-off from Dev", "**Failed:** no result", "## Risks",
             "scope creep", "> use OAuth", "## Replanning", "## Synthesis", "Login built with OAuth.",
             "**Ended (completed)**"]  # fmt: skip
    assert [markdown.index(text) for text in order] == sorted(markdown.index(text) for text in order)


def test_history_shows_results_reviews_failures_replans_and_a_non_empty_synthesis_only() -> None:
    shown = [team_message(event) for event in pipeline()]
    types = [None if m is None else m.metadata["message_type"] for m in shown]
    assert [t for t in types if t] == [
        "team_formed", "team_phase_result", "team_phase_result", "team_review", "team_review", "team_phase_result",
        "team_review", "team_phase_failed", "team_plan_update", "team_phase_result", "team_review", "team_synthesis",
    ]  # fmt: skip
    assert team_message(TeamSynthesis(team_id=T, content="")) is None
    review = team_message(_review("p2", "revise", reasons=("a", "b")), "Design")
    assert review is not None and review.content == "Revision requested.\n- a\n- b"
    assert review.metadata["phase_name"] == "Design" and review.agent_name == "team_collab"


# Any sequence of team events, including ones no team actor would write, folds into a view.
ids = st.sampled_from(["p1", "p2", "p3"])
names = st.sampled_from(["Lead", "Dev", ""])
texts = st.text(max_size=12)
revisions = st.integers(min_value=0, max_value=3)
plan_phases = st.lists(
    st.builds(PlanPhase, id=ids, name=texts, assignee=names, depends_on=st.lists(ids, max_size=2)), max_size=4
)
model = {"prompt_tokens": st.integers(0, 9), "completion_tokens": st.integers(0, 9), "truncated": st.booleans()}
team_events = st.one_of(
    st.builds(TeamFormed, team_id=st.just(T), task=texts, lead_expert=names, experts=st.just(EXPERTS), plan_phases=plan_phases, **model),
    st.builds(PlanUpdate, team_id=st.just(T), revision=revisions, plan_phases=plan_phases, reason=texts, **model),
    st.builds(CollaborationContractDefined, team_id=st.just(T), revision=revisions, contracts=st.just([])),
    st.builds(PlanStep, team_id=st.just(T), revision=revisions, step=revisions, phase_id=ids, phase_name=texts, assignee=names),
    st.builds(PhaseStarted, team_id=st.just(T), phase_id=ids, phase_name=texts, expert_id=names, expert_name=names),
    st.builds(ExpertStep, team_id=st.just(T), phase_id=ids, expert_id=names, expert_name=names, content=texts, step=revisions),
    st.builds(ExpertResult, team_id=st.just(T), phase_id=ids, expert_id=names, expert_name=names, content=texts, attempt=revisions, **model),
    st.builds(ReviewResult, team_id=st.just(T), phase_id=ids, reviewer=names, verdict=st.sampled_from(["accept", "revise"]),
              reasons=st.lists(texts, max_size=2), attempt=revisions, **model),
    st.builds(RiskFlagged, team_id=st.just(T), phase_id=st.none() | ids, risk=texts),
    st.builds(CollaborationNotice, team_id=st.just(T), from_phase_id=ids, from_expert=names, to_phase_id=ids, to_expert=names, content=texts),
    st.builds(PhaseCompleted, team_id=st.just(T), phase_id=ids, phase_name=texts, attempts=revisions, accepted=st.booleans()),
    st.builds(PhaseFailed, team_id=st.just(T), phase_id=ids, phase_name=texts, reason=texts),
    st.builds(Replanning, team_id=st.just(T), reason=texts, trigger=st.sampled_from(["phase_failed", "intervention"])),
    st.builds(TeamSynthesis, team_id=st.just(T), content=texts, **model),
    st.builds(TeamDissolved, team_id=st.just(T), status=st.sampled_from(["completed", "failed", "cancelled"]), reason=texts),
    st.builds(UserIntervention, target_id=st.just(T), content=texts),
    st.builds(UserMessage, message_id=st.just("m"), content=texts, idempotency_key=st.just("k")),
)  # fmt: skip


@st.composite
def logs(draw: st.DrawFn) -> list[RecordedEvent]:
    events: list[AnyEvent] = draw(st.lists(team_events, max_size=30))
    gaps = draw(st.lists(st.integers(min_value=1, max_value=5), min_size=len(events), max_size=len(events)))
    return recorded(events, start=0, gaps=gaps)


def _of(log: list[RecordedEvent], cls: type, phase_id: str, field: str = "phase_id") -> list[int]:
    return [r.position for r in log if isinstance(r.event, cls) and getattr(r.event, field) == phase_id]


@settings(max_examples=300)
@given(logs())
def test_replay_is_total_and_shows_every_team_event_once_in_log_order(log: list[RecordedEvent]) -> None:
    view = fold(T, log)
    team = [r for r in log if not isinstance(r.event, UserMessage)]
    assert [entry.position for entry in view.timeline] == [r.position for r in team]
    assert view.position == (team[-1].position if team else 0)
    all_phases = phases(view)
    assert len({p.id for p in all_phases}) == len(all_phases)
    assert all(p.in_plan for p in view.plan) and not any(p.in_plan for p in view.off_plan)
    for phase in all_phases:
        assert [s.position for s in phase.steps] == _of(team, ExpertStep, phase.id)
        assert [r.position for r in phase.results] == _of(team, ExpertResult, phase.id)
        assert [r.position for r in phase.reviews] == _of(team, ReviewResult, phase.id)
        assert [h.position for h in phase.handoffs] == _of(team, CollaborationNotice, phase.id, "to_phase_id")
    about_a_phase = PlanStep | PhaseStarted | ExpertStep | ExpertResult | ReviewResult | PhaseCompleted | PhaseFailed
    named = {r.event.phase_id for r in team if isinstance(r.event, about_a_phase)}
    named |= {r.event.to_phase_id for r in team if isinstance(r.event, CollaborationNotice)}
    assert named <= {p.id for p in all_phases}
    assert [i.position for i in view.interventions] == [
        r.position for r in team if isinstance(r.event, UserIntervention)
    ]
    assert [r.position for r in view.risks] == [r.position for r in team if isinstance(r.event, RiskFlagged)]
    assert [r.position for r in view.replans] == [r.position for r in team if isinstance(r.event, Replanning)]
    assert view.usage.calls == sum(is_model_call(r.event) for r in team)
    assert msgspec.json.decode(msgspec.json.encode(view), type=TeamView) == view
    markdown = team_markdown(view)
    for r in team:
        if isinstance(r.event, ExpertResult):
            assert r.event.content in markdown


@given(logs(), st.integers(min_value=0, max_value=200))
def test_replay_at_a_position_is_the_replay_of_the_log_up_to_it(log: list[RecordedEvent], at: int) -> None:
    prefix = [r for r in log if r.position <= at]
    assert fold(T, log, at=at) == fold(T, prefix)


@given(logs(), st.integers(min_value=0, max_value=30))
def test_replay_in_two_parts_equals_replay_in_one(log: list[RecordedEvent], cut: int) -> None:
    view = fold(T, log[:cut])
    for item in log[cut:]:
        apply(view, item)
    assert view == fold(T, log)
