"""Departments and quotas: admins' commands decided on the department's stream, projected, reserved against."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from actors.session.state import Refused, SessionState, decide_create
from projections import EventLog, Projector, ReadModels, create_engine
from projections.departments import DepartmentRefused, Departments, DepartmentState, decide, evolve
from projections.quotas import QuotaStore, QuotaUnavailable, Reservation
from schemas import CreateSession
from schemas.departments import AddMember, CreateDepartment, DepartmentCommand, RemoveMember, SetQuota
from schemas.events import DepartmentCreated, DepartmentMemberAdded, QuotaSet
from schemas.quotas import QuotaInfo
from schemas.streams import DEPARTMENTS_SESSION
from tests.conftest import outage


@pytest.fixture
async def log(engine: AsyncEngine) -> AsyncIterator[EventLog]:
    log = EventLog(engine)
    yield log
    await log.close()


@pytest.fixture
async def projected(engine: AsyncEngine, log: EventLog) -> AsyncIterator[ReadModels]:
    """The read models, with a projector running beside them."""
    projector = Projector(engine, log, poll_interval=0.2, retry_interval=0.05)
    task = asyncio.create_task(projector.run())
    yield ReadModels(engine)
    task.cancel()
    await asyncio.wait([task])


async def _department(log: EventLog, views: ReadModels, department_id: str, **quotas: int) -> None:
    """Create a department with quotas named `<type>_<period>`, and wait until the projector applied them."""
    departments = Departments(log)
    await departments.handle(CreateDepartment(department_id=department_id))
    for name, limit in quotas.items():
        quota_type, period = name.split("_")
        await departments.handle(
            SetQuota(department_id=department_id, quota_type=quota_type, period=period, limit=limit)  # type: ignore[arg-type]
        )
    assert await views.wait_caught_up(log)


def test_a_department_is_changed_only_once_it_exists_and_a_repeat_changes_nothing() -> None:
    state = DepartmentState(department_id="d")
    assert isinstance(decide(state, AddMember(department_id="d", user_id="ada")), DepartmentRefused)
    created = decide(state, CreateDepartment(department_id="d", name="Research"))
    assert created == [DepartmentCreated(department_id="d", name="Research")]
    evolve(state, created[0])
    assert decide(state, CreateDepartment(department_id="d")) == []
    added = decide(state, AddMember(department_id="d", user_id="ada"))
    assert added == [DepartmentMemberAdded(department_id="d", user_id="ada")]
    evolve(state, added[0])
    assert decide(state, AddMember(department_id="d", user_id="ada")) == []
    assert decide(state, RemoveMember(department_id="d", user_id="bob")) == []
    quota = SetQuota(department_id="d", quota_type="tokens", period="day", limit=10)
    [set_quota] = decide(state, quota)  # type: ignore[misc]
    evolve(state, set_quota)
    assert decide(state, quota) == []
    evolve(state, QuotaSet(department_id="d", quota_type="tokens", period="day", limit=None))
    assert state.quotas == [] and state.members == ["ada"] and state.version == 4


async def test_departments_are_events_in_the_log_projected_for_the_admin_api(
    log: EventLog, projected: ReadModels
) -> None:
    departments = Departments(log)
    await departments.handle(CreateDepartment(department_id="research", name="Research"))
    await departments.handle(AddMember(department_id="research", user_id="ada"))
    state = await departments.handle(
        SetQuota(department_id="research", quota_type="requests", period="month", limit=100)
    )
    assert isinstance(state, DepartmentState) and state.members == ["ada"]
    recorded = await log.read_stream("department-research")
    assert [type(r.event).__name__ for r in recorded] == ["DepartmentCreated", "DepartmentMemberAdded", "QuotaSet"]
    assert await projected.wait_caught_up(log)
    [view] = await projected.departments.list_departments()
    assert (view.department_id, view.name, view.members) == ("research", "Research", ["ada"])
    assert view.quotas == [
        QuotaInfo(department_id="research", quota_type="requests", period="month", limit=100, current=0)
    ]


async def test_two_admins_changing_one_department_at_once_lose_neither_change(log: EventLog) -> None:
    departments = Departments(log)
    await departments.handle(CreateDepartment(department_id="d"))
    users = [f"u{n}" for n in range(8)]
    await asyncio.gather(*(departments.handle(AddMember(department_id="d", user_id=u)) for u in users))
    assert sorted((await departments.load("d")).members) == users


async def test_a_reservation_is_refused_once_a_quota_is_used_up_and_tells_which(
    log: EventLog, projected: ReadModels, engine: AsyncEngine
) -> None:
    await _department(log, projected, "d", requests_day=2, tokens_month=1000)
    store = QuotaStore(engine)
    first = await store.reserve("ada", ["d"], 100)
    assert isinstance(first, Reservation) and first.departments == ("d",)
    await store.settle(first, 40)  # it took less than it reserved
    assert isinstance(await store.reserve("ada", ["d"], 100), Reservation)
    refused = await store.reserve("ada", ["d"], 100)
    assert refused == QuotaInfo(department_id="d", quota_type="requests", period="day", limit=2, current=2)
    # The refusal reserved nothing: the tokens hold what the two calls were counted for.
    [requests, tokens] = await store.current("d")
    assert (requests.current, tokens.current) == (2, 140)
    # Nobody is counted against a department they are not in; a member is, though their token does not name it.
    assert (await store.reserve("bob", ["other"], 100)) == Reservation(departments=("other",), tokens=100)
    await Departments(log).handle(AddMember(department_id="d", user_id="bob"))
    assert await projected.wait_caught_up(log)
    assert isinstance(await store.reserve("bob", [], 1), QuotaInfo)


async def test_concurrent_reservations_on_two_engines_overrun_a_quota_by_at_most_one_call(
    log: EventLog, projected: ReadModels, engine: AsyncEngine, fresh_database_url: str
) -> None:
    """Two processes' worth of engines, 40 calls of 30 tokens at once against 100: at most 100 + 30 - 1 taken."""
    await _department(log, projected, "d", tokens_day=100)
    other = create_engine(fresh_database_url)
    try:
        stores = [QuotaStore(engine), QuotaStore(other)]
        outcomes = await asyncio.gather(*(stores[n % 2].reserve("ada", ["d"], 30) for n in range(40)))
    finally:
        await other.dispose()
    admitted = [o for o in outcomes if isinstance(o, Reservation)]
    [tokens] = await QuotaStore(engine).current("d")
    assert len(admitted) == 4 and tokens.current == 120  # admitted while below 100: 0, 30, 60, 90
    assert all(isinstance(o, QuotaInfo) and o.current == 120 for o in outcomes if o not in admitted)


async def test_an_unreachable_quota_store_refuses_the_reservation(
    log: EventLog, projected: ReadModels, engine: AsyncEngine, postgres_url: str, fresh_database_url: str
) -> None:
    await _department(log, projected, "d", requests_day=5)
    store = QuotaStore(engine)
    async with outage(postgres_url, fresh_database_url):
        with pytest.raises(QuotaUnavailable):
            await store.reserve("ada", ["d"], 1)


def test_no_session_can_be_created_under_the_id_department_events_are_recorded_with() -> None:
    """Else its owner would find the departments' events in that session's feed and history."""
    decision = decide_create(SessionState(session_id=DEPARTMENTS_SESSION), CreateSession())
    assert isinstance(decision, Refused) and decision.code == "invalid_session_id"


_COMMANDS = msgspec.json.Decoder(DepartmentCommand)
_command = st.one_of(
    st.builds(CreateDepartment, department_id=st.text(max_size=20), name=st.text(max_size=20)),
    st.builds(AddMember, department_id=st.text(max_size=20), user_id=st.text(max_size=20)),
    st.builds(RemoveMember, department_id=st.text(max_size=20), user_id=st.text(max_size=20)),
    st.builds(
        SetQuota,
        department_id=st.text(max_size=20),
        quota_type=st.sampled_from(["requests", "tokens"]),
        period=st.sampled_from(["day", "month"]),
        limit=st.none() | st.integers(0, 2**62),
    ),
)


@settings(max_examples=50, deadline=None)
@given(command=_command)
def test_every_department_command_round_trips_and_a_negative_limit_is_refused(command: DepartmentCommand) -> None:
    assert _COMMANDS.decode(msgspec.json.encode(command)) == command
    with pytest.raises(msgspec.ValidationError):
        _COMMANDS.decode(b'{"type":"set_quota","department_id":"d","quota_type":"tokens","period":"day","limit":-1}')
