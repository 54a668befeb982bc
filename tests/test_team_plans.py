"""The lead's plans and reviews as models write them: read leniently, made runnable, never an exception."""

from __future__ import annotations

import re

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.team.plans import Review, Risk, contracts, fallback_plan, normalize, parse_plan, parse_review
from schemas.events import Contract, PlanPhase, TeamExpert

LEAD = TeamExpert(expert_id="t1-lead", name="Lead", role="lead")
MEMBERS = [
    TeamExpert(expert_id="t1-ann", name="Ann"),
    TeamExpert(expert_id="t1-bob", name="Bob"),
    TeamExpert(expert_id="t1-cy", name="Cy"),
]
TEAM_NAMES = {LEAD.name, *(member.name for member in MEMBERS)}


def phase(id_: str, assignee: str = "Ann", *depends_on: str, name: str = "", goal: str = "") -> PlanPhase:
    return PlanPhase(id=id_, name=name or id_, goal=goal, assignee=assignee, depends_on=list(depends_on))


def encoded(phases: list[PlanPhase]) -> str:
    return msgspec.json.encode({"phases": phases}).decode()


def with_trailing_comma(text: str) -> str:
    """`text` with a comma after the last phase (`…}]}` → `…},]}`)."""
    return text[:-2] + "," + text[-2:]


# --- parse_plan -------------------------------------------------------------------------------------------------

DEV_PLAN = [
    phase("design", "Ann", goal="the design"),
    phase("test-plan", "Cy", goal="the test plan"),
    phase("implementation", "Bob", "design", goal="the code"),
    phase("verification", "Cy", "implementation", "test-plan", goal="the verdict"),
]


def test_a_strict_json_plan_is_read_as_written() -> None:
    assert parse_plan(encoded(DEV_PLAN)) == DEV_PLAN


def test_a_plan_in_a_json_code_fence_between_prose_is_read() -> None:
    text = f"Here is the plan.\n\n```json\n{encoded(DEV_PLAN)}\n```\n\nTell me if it suits you."
    assert parse_plan(text) == DEV_PLAN


def test_a_trailing_comma_after_a_phase_and_after_a_key_is_forgiven() -> None:
    text = '{"phases": [{"id": "design", "name": "Design", "assignee": "Ann",}, {"id": "code", "depends_on": ["design",],},],}'
    assert parse_plan(text) == [
        PlanPhase(id="design", name="Design", assignee="Ann"),
        PlanPhase(id="code", name="", assignee="", depends_on=["design"]),
    ]


def test_key_aliases_and_any_case_are_read_as_the_phase_fields() -> None:
    text = """{"phases": [
        {"Phase_ID": "d", "Title": "Design", "Description": "draw it", "Owner": "ann", "Dependencies": []},
        {"phase": "Build", "objective": "code it", "expert": "Bob", "deps": "d"},
        {"task": "check it", "member": "Cy", "after": ["d", 7]},
        {"deliverable": "a report", "assigned_to": "Lead"}
    ]}"""
    assert parse_plan(text) == [
        PlanPhase(id="d", name="Design", goal="draw it", assignee="ann", depends_on=[]),
        PlanPhase(id="", name="Build", goal="code it", assignee="Bob", depends_on=["d"]),
        PlanPhase(id="", name="", goal="check it", assignee="Cy", depends_on=["d", "7"]),
        PlanPhase(id="", name="", goal="a report", assignee="Lead", depends_on=[]),
    ]


@pytest.mark.parametrize(
    "text",
    [
        '[{"id": "a", "name": "A"}, {"id": "b", "name": "B"}]',
        'The phases: [{"id": "a", "name": "A"}, {"id": "b", "name": "B"}] as agreed.',
        '{"plan": [{"id": "a", "name": "A"}, {"id": "b", "name": "B"}]}',
        '{"steps": [{"id": "a", "name": "A"}, {"id": "b", "name": "B"}], "note": "two steps"}',
    ],
    ids=["top-level list", "list in prose", "plan key", "steps key"],
)
def test_a_top_level_list_or_a_plan_or_steps_key_holds_the_phases(text: str) -> None:
    assert parse_plan(text) == [PlanPhase(id="a", name="A", assignee=""), PlanPhase(id="b", name="B", assignee="")]


def test_items_that_are_not_phases_are_skipped() -> None:
    text = '{"phases": ["design", 3, null, {"assignee": "Ann"}, {"id": "real", "depends_on": [null, 1.5, "x"]}]}'
    assert parse_plan(text) == [PlanPhase(id="real", name="", assignee="", depends_on=["x"])]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I could not make a plan.",
        "{}",
        "[]",
        '{"phases": []}',
        '{"phases": "design, then build"}',
        '["design", "build"]',
        '{"phases": [{"assignee": "Ann", "depends_on": ["x"]}]}',
        '{"phases": [{"id": "a"',
        "```json\n{not json}\n```",
    ],
)
def test_a_plan_with_no_readable_phase_is_none(text: str) -> None:
    assert parse_plan(text) is None


texts = st.text(max_size=30)
ids = st.sampled_from(["design", "test-plan", "Design!", "a", "a-2", ""]) | texts
planned_phases = st.builds(
    PlanPhase,
    id=ids,
    name=texts,
    goal=texts,
    assignee=st.sampled_from(["Ann", "bob", "nobody", ""]) | texts,
    depends_on=st.lists(ids, max_size=4),
).filter(lambda p: bool(p.id or p.name or p.goal))
plans = st.lists(planned_phases, min_size=1, max_size=6)


@settings(max_examples=500)
@given(st.text() | st.from_regex(r"[\s{}\[\],:\"0-9a-z`]*"))
def test_reading_a_plan_never_raises_on_any_text(text: str) -> None:
    parsed = parse_plan(text)
    assert parsed is None or (parsed and all(isinstance(p, PlanPhase) for p in parsed))


def test_reading_a_plan_never_raises_on_a_deeply_nested_answer() -> None:
    """A model stuck repeating `[` (1,000 brackets, well under an answer's token limit) gives no plan, not a crash."""
    assert parse_plan("[" * 1000) is None


@given(plans)
def test_an_encoded_plan_is_read_back_as_it_was(phases: list[PlanPhase]) -> None:
    assert parse_plan(encoded(phases)) == phases


_COMMA_BEFORE_CLOSE = re.compile(r",\s*[}\]]")
"""What the trailing-comma repair removes: kept out of the generated values, so the comma it repairs is the only one."""

clean_texts = texts.filter(lambda s: not _COMMA_BEFORE_CLOSE.search(s))
clean_plans = st.lists(
    st.builds(
        PlanPhase,
        id=clean_texts,
        name=clean_texts,
        goal=clean_texts,
        assignee=clean_texts,
        depends_on=st.lists(clean_texts, max_size=3),
    ).filter(lambda p: bool(p.id or p.name or p.goal)),
    min_size=1,
    max_size=5,
)


@given(clean_plans)
def test_an_encoded_plan_with_a_trailing_comma_is_read_back_as_it_was(phases: list[PlanPhase]) -> None:
    assert parse_plan(with_trailing_comma(encoded(phases))) == phases


prose = st.text(alphabet=st.characters(blacklist_characters="{}[]", blacklist_categories=["Cs"]), max_size=40)


@given(plans, prose, prose)
def test_an_encoded_plan_in_a_json_fence_with_prose_around_is_read_back_as_it_was(
    phases: list[PlanPhase], before: str, after: str
) -> None:
    assert parse_plan(f"{before}\n```json\n{encoded(phases)}\n```\n{after}") == phases


def test_the_trailing_comma_repair_leaves_the_text_inside_values_alone() -> None:
    """Repairing a trailing comma after the last phase must not rewrite a goal that quotes `[a, b, ]`."""
    phases = [phase("design", goal="Compare the options [a, b, ] and pick one")]
    assert parse_plan(with_trailing_comma(encoded(phases))) == phases


# --- normalize --------------------------------------------------------------------------------------------------


def test_ids_become_unique_slugs_of_the_id_else_the_name_else_the_position() -> None:
    phases = [
        phase("Design Doc!", name="x"),
        phase("design-doc", name="y"),
        phase("", name="Build It"),
        phase("", name="?!"),
        phase("design doc", name="z"),
    ]
    assert [p.id for p in normalize(phases, MEMBERS, lead=LEAD, max_phases=8)] == [
        "design-doc",
        "design-doc-2",
        "build-it",
        "phase-4",
        "design-doc-3",
    ]


def test_names_and_goals_are_trimmed_and_an_empty_name_is_the_id() -> None:
    [normalized] = normalize(
        [PlanPhase(id="a", name="  ", goal="  do it  ", assignee="Ann")], MEMBERS, lead=LEAD, max_phases=8
    )
    assert (normalized.name, normalized.goal) == ("a", "do it")


def test_assignees_are_matched_to_the_team_in_any_case_else_spread_over_the_members_in_turn() -> None:
    phases = [phase("a", " bob "), phase("b", "nobody"), phase("c", "CY"), phase("d", ""), phase("e", "ghost")]
    normalized = normalize(phases, MEMBERS, lead=LEAD, max_phases=8)
    # Unknown assignees take the member whose turn it is by position: b is 2nd (Bob), d 4th (Ann), e 5th (Bob).
    assert [p.assignee for p in normalized] == ["Bob", "Bob", "Cy", "Ann", "Bob"]


def test_the_lead_may_take_a_phase() -> None:
    [normalized] = normalize([phase("review", "LEAD")], MEMBERS, lead=LEAD, max_phases=8)
    assert normalized.assignee == "Lead"


def test_dependencies_on_phases_that_do_not_exist_or_on_the_phase_itself_are_dropped() -> None:
    phases = [phase("a"), phase("b", "Ann", "a", "A", "ghost", "b", "")]
    assert [p.depends_on for p in normalize(phases, MEMBERS, lead=LEAD, max_phases=8)] == [[], ["a"]]


def test_phases_come_after_their_dependencies_whatever_order_they_were_written_in() -> None:
    phases = [phase("verify", "Cy", "build"), phase("build", "Bob", "design"), phase("design")]
    assert [p.id for p in normalize(phases, MEMBERS, lead=LEAD, max_phases=8)] == ["design", "build", "verify"]


def test_a_cycle_is_broken_by_dropping_the_dependency_that_closes_it() -> None:
    phases = [phase("a", "Ann", "c"), phase("b", "Bob", "a"), phase("c", "Cy", "b")]
    normalized = normalize(phases, MEMBERS, lead=LEAD, max_phases=8)
    assert [(p.id, p.depends_on) for p in normalized] == [("a", []), ("b", ["a"]), ("c", ["b"])]


def test_at_most_max_phases_new_phases_are_kept_the_first_ones() -> None:
    phases = [phase(f"p{i}") for i in range(10)]
    assert [p.id for p in normalize(phases, MEMBERS, lead=LEAD, max_phases=3)] == ["p0", "p1", "p2"]


def test_kept_phases_stay_first_as_they_are_and_a_new_phase_with_a_kept_id_is_dropped() -> None:
    kept = [phase("design", "Ann", goal="done"), phase("build", "Bob", "design", goal="under way")]
    new = [phase("Design", "Cy", goal="again"), phase("verify", "Cy", "build"), phase("build", "Ann", goal="again")]
    normalized = normalize(new, MEMBERS, lead=LEAD, max_phases=1, keep=kept)
    assert normalized == [*kept, phase("verify", "Cy", "build")]


team_assignees = st.sampled_from(["Ann", "ann", " BOB ", "Cy", "Lead", "lead", "nobody", ""]) | st.text(max_size=6)
any_ids = st.sampled_from(["a", "A", "a-2", "b", "b!", "", "phase-1", "k1", "K2", "k3-2"]) | st.text(max_size=6)
any_phases = st.builds(
    PlanPhase,
    id=any_ids,
    name=st.sampled_from(["", "A", "Design", "k1"]) | st.text(max_size=6),
    goal=st.text(max_size=6),
    assignee=team_assignees,
    depends_on=st.lists(any_ids, max_size=5),
)


@st.composite
def kept_phases(draw: st.DrawFn) -> list[PlanPhase]:
    """Phases done or under way: unique slug ids, team assignees, dependencies only on earlier ones."""
    chosen = draw(st.lists(st.sampled_from(["k1", "k2", "k3", "a", "phase-1"]), unique=True, max_size=4))
    return [
        PlanPhase(
            id=id_,
            name=id_.upper(),
            assignee=draw(st.sampled_from(sorted(TEAM_NAMES))),
            depends_on=draw(st.lists(st.sampled_from(chosen[:index]), unique=True)) if index else [],
        )
        for index, id_ in enumerate(chosen)
    ]


@settings(max_examples=500)
@given(
    st.lists(any_phases, max_size=12),
    st.lists(st.sampled_from(MEMBERS), min_size=1, max_size=3, unique=True),
    kept_phases(),
    st.integers(min_value=1, max_value=6),
)
def test_any_plan_normalizes_to_unique_ids_team_assignees_and_dependencies_on_earlier_phases_only(
    phases: list[PlanPhase], members: list[TeamExpert], keep: list[PlanPhase], max_phases: int
) -> None:
    normalized = normalize(phases, members, lead=LEAD, max_phases=max_phases, keep=keep)
    ids_ = [p.id for p in normalized]
    assert len(set(ids_)) == len(ids_) and all(ids_)
    assert all(re.fullmatch(r"[a-z0-9-]+", id_) for id_ in ids_)
    assert {p.assignee for p in normalized} <= {LEAD.name, *(m.name for m in members)} | {p.assignee for p in keep}
    for index, planned in enumerate(normalized):
        assert set(planned.depends_on) <= set(ids_[:index]), "a dependency comes earlier (so there is no cycle)"
        assert len(set(planned.depends_on)) == len(planned.depends_on)
    assert len(normalized) <= len(keep) + max_phases
    assert normalized[: len(keep)] == keep


# --- fallback_plan and contracts --------------------------------------------------------------------------------


def test_the_fallback_plan_gives_each_member_one_independent_phase_of_the_task() -> None:
    members = [*MEMBERS, TeamExpert(expert_id="t1-x", name="?!")]
    plan = fallback_plan("write a parser", members)
    assert [(p.id, p.assignee, p.depends_on) for p in plan] == [
        ("ann", "Ann", []),
        ("bob", "Bob", []),
        ("cy", "Cy", []),
        ("phase-4", "?!", []),
    ]
    assert all("write a parser" in p.goal for p in plan)
    assert plan[0].name == "Ann's part"


def test_a_contract_is_owed_to_the_members_building_on_the_phase_else_to_the_lead() -> None:
    assert contracts(DEV_PLAN, "Lead") == [
        Contract(phase_id="design", owner="Ann", deliverable="the design", consumers=["Bob"]),
        Contract(phase_id="test-plan", owner="Cy", deliverable="the test plan", consumers=["Cy"]),
        Contract(phase_id="implementation", owner="Bob", deliverable="the code", consumers=["Cy"]),
        Contract(phase_id="verification", owner="Cy", deliverable="the verdict", consumers=["Lead"]),
    ]


def test_a_contract_names_each_consumer_once_and_its_deliverable_is_the_name_without_a_goal() -> None:
    phases = [phase("a", name="Alpha"), phase("b", "Bob", "a"), phase("c", "Bob", "a")]
    [first, *_] = contracts(phases, "Lead")
    assert (first.deliverable, first.consumers) == ("Alpha", ["Bob"])


# --- parse_review -----------------------------------------------------------------------------------------------


def test_a_json_review_gives_its_verdict_reasons_and_risks_with_their_severity() -> None:
    text = """```json
    {"verdict": "revise", "reasons": ["no tests", " "], "risks": [{"risk": "slow", "severity": "HIGH"}, "fragile"]}
    ```"""
    assert parse_review(text) == Review(
        verdict="revise", reasons=["no tests"], risks=[Risk(risk="slow", severity="high"), Risk(risk="fragile")]
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"Decision": "Rejected", "feedback": "too vague"}', Review(verdict="revise", reasons=["too vague"])),
        ('{"status": "accepted", "comments": ["fine", "tidy"]}', Review(verdict="accept", reasons=["fine", "tidy"])),
        ('{"verdict": "rework it"}', Review(verdict="revise")),
        ('{"approved": true, "reasons": "clear"}', Review(verdict="accept", reasons=["clear"])),
        ('{"approved": false}', Review(verdict="revise")),
        ('{"approved": false, "verdict": "accept"}', Review(verdict="accept")),
        ('{"verdict": "accept",}', Review(verdict="accept")),
    ],
    ids=["decision+feedback", "status+comments", "rework", "approved", "not approved", "verdict wins", "comma"],
)
def test_a_json_review_is_read_with_its_aliases(text: str, expected: Review) -> None:
    assert parse_review(text) == expected


def test_an_unknown_severity_is_medium_and_blank_or_odd_risks_are_skipped() -> None:
    text = '{"verdict": "accept", "risks": [{"risk": "leak", "severity": "dire"}, {"risk": " "}, "", 3, {"x": 1}]}'
    assert parse_review(text).risks == [Risk(risk="leak", severity="medium")]


@pytest.mark.parametrize(
    "text",
    ["Please revise: the tests are missing.", "I REJECT this.", "Needs a redo", "Rework the second part."],
)
def test_a_prose_review_asking_to_revise_is_revise_with_the_prose_as_its_reason(text: str) -> None:
    assert parse_review(text) == Review(verdict="revise", reasons=[text])


def test_a_prose_review_without_revise_words_accepts_with_its_whitespace_collapsed() -> None:
    assert parse_review("Looks good.\n\n  Ship it.") == Review(verdict="accept", reasons=["Looks good. Ship it."])
    assert parse_review("   ") == Review(verdict="accept")


def test_a_long_prose_review_keeps_500_characters_as_its_reason() -> None:
    [reason] = parse_review("fine " * 200).reasons
    assert len(reason) == 500


@settings(max_examples=500)
@given(st.text() | st.from_regex(r"[\s{}\[\],:\"a-z]*"))
def test_reading_a_review_never_raises_on_any_text(text: str) -> None:
    review = parse_review(text)
    assert review.verdict in ("accept", "revise")


@given(
    st.builds(
        Review,
        verdict=st.sampled_from(["accept", "revise"]),
        reasons=st.lists(st.text(min_size=1).map(str.strip).filter(bool), max_size=3),
        risks=st.lists(
            st.builds(
                Risk,
                risk=st.text(min_size=1).map(str.strip).filter(bool),
                severity=st.sampled_from(["low", "medium", "high"]),
            ),
            max_size=3,
        ),
    )
)
def test_an_encoded_review_is_read_back_as_it_was(review: Review) -> None:
    assert parse_review(msgspec.json.encode(review).decode()) == review


def test_a_review_whose_only_json_has_no_verdict_is_judged_by_its_words() -> None:
    assert parse_review('Revise: the output {"x": 1} lacks y').verdict == "revise"


def test_a_review_with_a_null_verdict_follows_approved() -> None:
    assert parse_review('{"verdict": null, "approved": false, "reasons": ["thin"]}').verdict == "revise"
