"""A command's principal is believed only when a trusted gateway signed it (`bus.origin`), on any NATS.

Over the real nats-server of the suite (no auth): what the signature proves
does not depend on the server's accounts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from bus import Bus
from bus.credentials import new_seed_file
from bus.origin import KEY_HEADER, SERVICE, SIGNATURE_HEADER, Origin
from schemas import CreateSession, Principal, SendMessage, SessionReady, Subjects, codec, encode

ALICE = Principal(id="alice", role="user", departments=("sales",))


def test_a_signed_command_keeps_its_principal_and_any_change_or_another_key_loses_it(tmp_path: Path) -> None:
    gateway = new_seed_file(tmp_path / "gateway.nk")
    impostor = new_seed_file(tmp_path / "impostor.nk")
    worker = Origin(trusted=frozenset({gateway.public_key}))
    subject = Subjects().session_cmd("s1")
    command = SendMessage(content="hi", idempotency_key="k1", principal=ALICE)
    data = encode(command)
    signed = Origin(signer=gateway).headers(subject, data)

    assert worker.acting_for(command, subject, data, signed).principal == ALICE
    assert worker.acting_for(command, subject, data, None).principal == SERVICE
    assert (
        worker.acting_for(command, subject, data, Origin(signer=impostor).headers(subject, data)).principal == SERVICE
    )
    tampered = SendMessage(content="hi", idempotency_key="k1", principal=Principal(id="alice", role="admin"))
    assert worker.acting_for(tampered, subject, encode(tampered), signed).principal == SERVICE
    other_session = Subjects().session_cmd("s2")
    assert worker.acting_for(command, other_session, data, signed).principal == SERVICE
    garbled = {KEY_HEADER: gateway.public_key, SIGNATURE_HEADER: "not base64!"}
    assert worker.acting_for(command, subject, data, garbled).principal == SERVICE
    # A command without a principal from a service acts as the service too.
    plain = SendMessage(content="hi")
    assert worker.acting_for(plain, subject, encode(plain), None).principal == SERVICE


async def test_a_create_served_on_the_bus_reaches_its_handler_with_the_principal_its_sender_may_claim(
    nats_url: str, subject_prefix: str, tmp_path: Path
) -> None:
    gateway_key = new_seed_file(tmp_path / "gateway.nk")
    subjects = Subjects(subject_prefix)
    worker = await Bus.connect(
        nats_url, name="worker", subjects=subjects, origin=Origin(trusted=frozenset({gateway_key.public_key}))
    )
    gateway = await Bus.connect(nats_url, name="gateway", subjects=subjects, origin=Origin(signer=gateway_key))
    service = await Bus.connect(nats_url, name="service", subjects=subjects)
    seen: asyncio.Queue[Principal | None] = asyncio.Queue()

    async def create(command: CreateSession) -> SessionReady:
        seen.put_nowait(command.principal)
        return SessionReady(session_id="s1", agent_name=command.agent_name, position=1)

    served = await worker.serve(subjects.sessions_create, codec.create_session, create, queue="workers")
    try:
        for bus in (gateway, service):
            reply = await bus.request(
                subjects.sessions_create, CreateSession(principal=ALICE), codec.create_session_replies
            )
            assert isinstance(reply, SessionReady)
        assert [await seen.get(), await seen.get()] == [ALICE, SERVICE]
    finally:
        await served.unsubscribe()
        for bus in (worker, gateway, service):
            await bus.close()
    assert msgspec.json.decode(encode(SERVICE)) == {"id": "service", "role": "service"}
