"""A named service's commands act as that service (`bus.origin`), counted against its own quota, on one `agentbus up`.

`agentbus credentials --service billing --service crm` makes their seeds and
the workers' `AGENTBUS_SERVICE_KEYS`; each service connects with its own seed
(its bus signs with it), claims to be an admin, and is taken for itself.
The suite's NATS has no auth: what a signature proves does not depend on the
server (on the embedded one, `tests/test_system_nats_auth.py`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from bus import Bus, publish_command
from bus.credentials import Credential
from schemas import CreateSession, Principal, RecordedEvent, SendMessage, SessionReady, Subjects, codec
from schemas.events import AssistantMessage, MessageFailed, SessionCreated, UserMessage
from schemas.history import EventsPage, ReadEvents, events_replies
from tests.system import AGENTBUS, System
from tests.test_examples import EXAMPLES, NODE_DIR, check, npm_installed, summary_of
from tests.test_system_quotas import admin
from tests.users import ENV

ROOT = Principal(id="root", role="admin")
"""What every service below claims to be: an admin, whom no quota counts."""
Connect = Callable[[str], Awaitable[Bus]]


@pytest.fixture
def credentials(tmp_path: Path, system_env: dict[str, str]) -> Path:
    """The directory `agentbus credentials` wrote for the services billing and crm."""
    directory = tmp_path / "credentials"
    made = subprocess.run(
        [AGENTBUS, "credentials", str(directory), "--service", "billing", "--service", "crm"],
        env={**os.environ, **system_env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    return directory


@pytest.fixture
def system(tmp_path: Path, system_env: dict[str, str], credentials: Path) -> Iterator[System]:
    """An `agentbus up` whose worker has the workers' environment `agentbus credentials` wrote."""
    written = dict(line.split("=", 1) for line in (credentials / "agentbus.env").read_text().splitlines())
    system = System(tmp_path / "data", {**system_env, **ENV, "AGENTBUS_SERVICE_KEYS": written["AGENTBUS_SERVICE_KEYS"]})
    yield system.start()
    if system.process is not None:
        assert system.stop() == 0


@pytest.fixture
async def service(system: System, credentials: Path) -> AsyncIterator[Connect]:
    """Connect as a named service, with its seed, as an agentbus client does (`Bus.connect(credential=…)`)."""
    opened: list[Bus] = []

    async def connect(name: str) -> Bus:
        bus = await Bus.connect(
            system.nats_url,
            name=name,
            subjects=Subjects(system.env["AGENTBUS_SUBJECT_PREFIX"]),
            credential=Credential(credentials / f"{name}.nk"),
        )
        opened.append(bus)
        return bus

    yield connect
    for bus in opened:
        await bus.close()


async def create(bus: Bus) -> str:
    ready = await bus.request(bus.subjects.sessions_create, CreateSession(principal=ROOT), codec.create_session_replies)
    assert isinstance(ready, SessionReady), ready
    return ready.session_id


async def chat(bus: Bus, session_id: str, content: str) -> tuple[UserMessage, AssistantMessage | MessageFailed]:
    """Send `content` claiming to be `ROOT`; return the user message recorded and what ended its turn."""
    feed = await bus.subscribe(bus.subjects.session_evt(session_id), codec.feed)
    try:
        await publish_command(bus, session_id, SendMessage(content=content, principal=ROOT))
        sent: UserMessage | None = None
        async with asyncio.timeout(30):
            async for item in feed:
                if not isinstance(item, RecordedEvent):
                    continue
                match item.event:
                    case UserMessage(content=said) as event if said == content:
                        sent = event
                    case AssistantMessage() | MessageFailed() as ended if sent and ended.reply_to == sent.message_id:
                        return sent, ended
    finally:
        await feed.close()
    raise AssertionError("the feed ended")


async def events_of(bus: Bus, session_id: str) -> list[RecordedEvent]:
    """The session's log, read over the bus as a service does (one page holds these short sessions)."""
    page = await bus.request(bus.subjects.session_events(session_id), ReadEvents(after=0), events_replies)
    assert isinstance(page, EventsPage) and not page.more, page
    return [item for item in page.events if isinstance(item, RecordedEvent)]


def as_service(name: str) -> Principal:
    return Principal(id=name, role="service")


async def test_each_named_service_is_recorded_as_itself_whatever_principal_it_claims(
    system: System, service: Connect, credentials: Path
) -> None:
    billing, crm = await service("billing"), await service("crm")
    billing_session, crm_session = await create(billing), await create(crm)
    for bus, session_id, name in ((billing, billing_session, "billing"), (crm, crm_session, "crm")):
        sent, answer = await chat(bus, session_id, f"hello from {name}")
        assert sent.principal == as_service(name)
        assert isinstance(answer, AssistantMessage)
        # Claimed as an admin, created as a service: a service's sessions have no owner.
        created = (await events_of(bus, session_id))[0].event
        assert isinstance(created, SessionCreated) and created.owner is None
    # `agentbus publish` with crm's seed signs as crm, on billing's session (a service may write any).
    published = await asyncio.to_thread(
        subprocess.run,
        [AGENTBUS, "publish", "--session", billing_session, "hi from the cli"],
        env={**system.env, "AGENTBUS_NATS_CREDENTIALS": str(credentials / "crm.nk")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert published.returncode == 0, published.stderr
    said = {
        item.event.content: item.event.principal
        for item in await events_of(billing, billing_session)
        if isinstance(item.event, UserMessage)
    }
    assert said == {"hello from billing": as_service("billing"), "hi from the cli": as_service("crm")}


async def test_one_services_quota_refuses_it_while_the_other_service_goes_on(system: System, service: Connect) -> None:
    """billing is a member of a department allowed 1 request a day; it claims to be an admin (exempt), in vain."""
    async with admin(system) as client:
        assert (await client.post("/departments", json={"department_id": "billing-dept"})).status_code < 300
        assert (await client.put("/departments/billing-dept/members/billing")).status_code == 200
        quota = await client.put("/departments/billing-dept/quotas/requests/day", json={"limit": 1})
        assert quota.status_code == 200, quota.text
    billing, crm = await service("billing"), await service("crm")
    billing_session, crm_session = await create(billing), await create(crm)
    answered = 0
    while isinstance(
        (ended := (await chat(billing, billing_session, f"billing asks {answered}"))[1]), AssistantMessage
    ):
        answered += 1
        assert answered < 5, "billing's quota never ran out"
    assert ended.code == "quota_exceeded", ended
    for turn in range(3):
        sent, answer = await chat(crm, crm_session, f"crm asks {turn}")
        assert sent.principal == as_service("crm") and isinstance(answer, AssistantMessage), answer
    async with admin(system) as client:
        [department] = [d for d in (await client.get("/departments")).json() if d["department_id"] == "billing-dept"]
    assert department["members"] == ["billing"]


def test_the_examples_sign_with_their_seed_so_each_acts_as_its_service(system: System, credentials: Path) -> None:
    """The Python example with billing's seed, the Node one with crm's (nats.js's own nkeys: no other package)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AGENTBUS_")}
    env.update(AGENTBUS_NATS_URL=system.nats_url, AGENTBUS_SUBJECT_PREFIX=system.env["AGENTBUS_SUBJECT_PREFIX"])
    runs = [("billing", [sys.executable, str(EXAMPLES / "python" / "client.py")], EXAMPLES)]
    if shutil.which("node") is not None and shutil.which("npm") is not None:
        npm_installed()
        runs.append(("crm", ["node", "client.mjs"], NODE_DIR))
    for name, program, cwd in runs:
        text = f"hello from the {name} example"
        run = subprocess.run(
            [*program, text],
            cwd=cwd,
            env={**env, "AGENTBUS_NATS_CREDENTIALS": str(credentials / f"{name}.nk")},
            capture_output=True,
            text=True,
            timeout=90,
        )
        summary = summary_of(run)
        check(summary, text)
        assert summary["acted_as"] == {"id": name, "role": "service"}, name
    if len(runs) < 2:
        pytest.skip("node and npm are needed for examples/node: only the Python one ran")
