"""A command's principal is believed only when a trusted gateway signed it; a named service's acts as that
service, anything else as the anonymous one (`bus.origin`), on any NATS.

Over the real nats-server of the suite (no auth): what the signature proves
does not depend on the server's accounts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from bus import Bus, BusError
from bus.credentials import new_seed_file
from bus.origin import KEY_HEADER, SERVICE, SIGNATURE_HEADER, Origin
from schemas import CreateSession, Principal, SendMessage, SessionReady, Subjects, codec, encode

ALICE = Principal(id="alice", role="user", departments=("sales",))
ROOT = Principal(id="root", role="admin")


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


def test_a_command_a_named_service_signed_acts_as_that_service_whatever_it_claims(tmp_path: Path) -> None:
    gateway = new_seed_file(tmp_path / "gateway.nk")
    billing, crm = new_seed_file(tmp_path / "billing.nk"), new_seed_file(tmp_path / "crm.nk")
    stranger = new_seed_file(tmp_path / "stranger.nk")
    worker = Origin(
        trusted=frozenset({gateway.public_key}), services={"billing": billing.public_key, "crm": crm.public_key}
    )
    subject = Subjects().session_cmd("s1")
    for claim in (ROOT, ALICE, Principal(id="crm", role="service"), None):
        command = SendMessage(content="hi", principal=claim)
        data = encode(command)
        for signer, acting in ((billing, "billing"), (crm, "crm")):
            signed = Origin(signer=signer).headers(subject, data)
            assert worker.acting_for(command, subject, data, signed).principal == Principal(id=acting, role="service")
        # An unknown key, or a known key's signature over other bytes, proves nothing: the anonymous service.
        unknown = Origin(signer=stranger).headers(subject, data)
        assert worker.acting_for(command, subject, data, unknown).principal == SERVICE
        other = Origin(signer=billing).headers(subject, encode(SendMessage(content="other", principal=claim)))
        assert worker.acting_for(command, subject, data, other).principal == SERVICE
    create = CreateSession(principal=ROOT)
    signed = Origin(signer=crm).headers(Subjects().sessions_create, encode(create))
    acting = worker.acting_for(create, Subjects().sessions_create, encode(create), signed)
    assert acting.principal == Principal(id="crm", role="service")


def test_a_key_named_twice_or_both_a_gateway_and_a_service_is_refused(tmp_path: Path) -> None:
    key = new_seed_file(tmp_path / "one.nk").public_key
    with pytest.raises(BusError, match="share one public key"):
        Origin(services={"billing": key, "crm": key})
    with pytest.raises(BusError, match="both a gateway's and a service's"):
        Origin(trusted=frozenset({key}), services={"billing": key})


async def test_a_create_served_on_the_bus_reaches_its_handler_with_the_principal_its_sender_may_claim(
    nats_url: str, subject_prefix: str, tmp_path: Path
) -> None:
    gateway_key, billing_key = new_seed_file(tmp_path / "gateway.nk"), new_seed_file(tmp_path / "billing.nk")
    subjects = Subjects(subject_prefix)
    origin = Origin(trusted=frozenset({gateway_key.public_key}), services={"billing": billing_key.public_key})
    worker = await Bus.connect(nats_url, name="worker", subjects=subjects, origin=origin)
    # A bus connected with a credential signs with it by itself (the suite's NATS has no auth: it ignores the nkey).
    gateway = await Bus.connect(nats_url, name="gateway", subjects=subjects, credential=gateway_key)
    billing = await Bus.connect(nats_url, name="billing", subjects=subjects, credential=billing_key)
    service = await Bus.connect(nats_url, name="service", subjects=subjects)
    seen: asyncio.Queue[Principal | None] = asyncio.Queue()

    async def create(command: CreateSession) -> SessionReady:
        seen.put_nowait(command.principal)
        return SessionReady(session_id="s1", agent_name=command.agent_name, position=1)

    served = await worker.serve(subjects.sessions_create, codec.create_session, create, queue="workers")
    await worker.flush()  # the server has the subscription before anyone asks
    try:
        for bus in (gateway, billing, service):
            reply = await bus.request(
                subjects.sessions_create, CreateSession(principal=ALICE), codec.create_session_replies
            )
            assert isinstance(reply, SessionReady)
        assert [await seen.get() for _ in range(3)] == [ALICE, Principal(id="billing", role="service"), SERVICE]
    finally:
        await served.unsubscribe()
        for bus in (worker, gateway, billing, service):
            await bus.close()
    assert msgspec.json.decode(encode(SERVICE)) == {"id": "service", "role": "service"}
