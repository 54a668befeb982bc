"""A service speaking to agentbus over NATS alone (nats-py, no agentbus import); see docs/bus.md.

It creates a session, follows the session's live subject, publishes one chat
message twice with one idempotency key (JetStream stores it once), waits for the
assistant's answer, then catches up over the events request and checks that the
log holds the user message once. The last line it prints is a JSON summary;
it exits 1 when a check fails.

    AGENTBUS_NATS_URL=nats://127.0.0.1:4222 python examples/python/client.py "hello"

Without `AGENTBUS_NATS_URL` it reads `.agentbus/endpoints.json` (what `make run`
writes), then falls back to nats://127.0.0.1:4222. `AGENTBUS_SUBJECT_PREFIX`
is the subject prefix (default `agentbus`). `AGENTBUS_NATS_CREDENTIALS` names
the service's nkey seed file (the embedded NATS of `make run` lets in no one
without one: endpoints.json names the file it wrote for services); replies then
come under the credential's own inbox, `_INBOX.<its public key>`, the only one
the server lets it read. It signs what it publishes with that seed (docs/bus.md,
*Who a command acts for*), so its commands act as the service the workers
know that key by (`AGENTBUS_SERVICE_KEYS`), whatever principal they claim.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import nats
import nkeys
from nats.aio.msg import Msg

TIMEOUT = 30.0
"""Seconds to wait for the answer."""


def nats_url() -> str:
    if url := os.environ.get("AGENTBUS_NATS_URL"):
        return url
    endpoints = Path(os.environ.get("AGENTBUS_DATA_DIR", ".agentbus")) / "endpoints.json"
    if endpoints.is_file():
        return str(json.loads(endpoints.read_text())["nats_url"])
    return "nats://127.0.0.1:4222"


def seed_file() -> str | None:
    """The service's nkey seed file, if one is named (or `make run`'s endpoints.json names one)."""
    path = os.environ.get("AGENTBUS_NATS_CREDENTIALS")
    endpoints = Path(os.environ.get("AGENTBUS_DATA_DIR", ".agentbus")) / "endpoints.json"
    if not path and not os.environ.get("AGENTBUS_NATS_URL") and endpoints.is_file():
        path = json.loads(endpoints.read_text()).get("nats_credentials")
    return path or None


def credential_options(path: str | None) -> dict[str, Any]:
    """nats-py's arguments for the seed file `path`, if there is one: the seed, and the inbox it owns."""
    if not path:
        return {}
    public_key = nkeys.from_seed(bytearray(Path(path).read_bytes().strip())).public_key.decode()
    return {"nkeys_seed": path, "inbox_prefix": f"_INBOX.{public_key}"}


def signature(path: str | None, subject: str, data: bytes) -> dict[str, str]:
    """The headers that prove this service published `data` on `subject`: ed25519 over `subject`, a newline, `data`.

    Without a seed, none: the command then acts as the anonymous service `service`.
    """
    if not path:
        return {}
    keys = nkeys.from_seed(bytearray(Path(path).read_bytes().strip()))
    signed = keys.sign(subject.encode() + b"\n" + data)
    return {"Agentbus-Signer-Key": keys.public_key.decode(), "Agentbus-Signature": base64.b64encode(signed).decode()}


def say(text: str) -> None:
    print(text, flush=True)


async def request(nc: nats.NATS, subject: str, body: dict[str, Any], seed: str | None = None) -> dict[str, Any]:
    """Send a request (signed with `seed`, if given) and return its reply; an `error` reply ends the program."""
    data = json.dumps(body).encode()
    msg = await nc.request(subject, data, timeout=5, headers=signature(seed, subject, data) or None)
    reply: dict[str, Any] = json.loads(msg.data)
    if reply["type"] == "error":
        raise SystemExit(f"{subject}: {reply['code']}: {reply['message']}")
    return reply


async def read_events(nc: nats.NATS, prefix: str, session_id: str, after: int = 0) -> list[dict[str, Any]]:
    """Return every event of the session after `after`, page by page, from the log over the bus."""
    found: list[dict[str, Any]] = []
    while True:
        page = await request(nc, f"{prefix}.session.{session_id}.events", {"after": after, "limit": 100})
        found.extend(page["events"])
        after = page["next_after"]
        if not page["more"]:
            return found


async def main(text: str, key: str) -> int:
    prefix = os.environ.get("AGENTBUS_SUBJECT_PREFIX", "agentbus")
    seed = seed_file()
    nc = await nats.connect(nats_url().split(","), name="agentbus-example-python", **credential_options(seed))
    try:
        # 1. Create a session (request/reply; any worker answers), signed: it is created as this service's.
        create = {"type": "create_session", "agent_name": "assistant"}
        ready = await request(nc, f"{prefix}.sessions.create", create, seed)
        session_id = ready["session_id"]
        say(f"session {session_id} created at position {ready['position']}")

        # 2. Follow the session before sending, so nothing said after the send is missed.
        live: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def on_live(msg: Msg) -> None:
            await live.put(json.loads(msg.data))

        sub = await nc.subscribe(f"{prefix}.session.{session_id}.evt", cb=on_live)
        await nc.flush()

        # 3. Publish one message twice with one key: JetStream keeps the first, acks the second as a duplicate.
        js = nc.jetstream()
        subject = f"{prefix}.session.{session_id}.cmd"
        command = json.dumps({"type": "send_message", "content": text, "idempotency_key": key}).encode()
        headers = {"Nats-Msg-Id": f"{session_id}:{key}", **signature(seed, subject, command)}
        acks = []
        for _ in range(2):
            ack = await js.publish(subject, command, headers=headers)
            acks.append({"sequence": ack.seq, "duplicate": bool(ack.duplicate)})
        say(f"published twice: {acks}")

        # 4. Follow the live subject to the answer (events carry `position`; frames do not).
        message_id = None
        seen: set[int] = set()
        answer = None
        async with asyncio.timeout(TIMEOUT):
            while answer is None:
                item = await live.get()
                if item["type"] == "command_refused" and item["idempotency_key"] in (key, None):
                    raise SystemExit(f"refused: {item['code']}: {item['message']}")
                if item["type"] == "event_omitted":
                    seen.add(item["position"])  # too big for NATS: the events request has it
                    continue
                if item["type"] != "event" or item["position"] in seen:
                    continue  # a frame (token, …), or an event delivered again
                seen.add(item["position"])
                event = item["event"]
                if event["type"] == "user_message" and event["idempotency_key"] == key:
                    message_id = event["message_id"]
                elif event["type"] == "assistant_message" and message_id and event["reply_to"] == message_id:
                    answer = event["content"]
                elif event["type"] == "message_failed" and message_id and event["reply_to"] == message_id:
                    raise SystemExit(f"no answer: {event['code']}: {event['reason']}")
        await sub.unsubscribe()
        say(f"answer: {answer}")

        # 5. Catch up over the bus, as a service that reconnects does: the log holds the message once.
        events = await read_events(nc, prefix, session_id)
        recorded = [e for e in events if e["event"]["type"] == "user_message" and e["event"]["idempotency_key"] == key]
        say(f"the log holds {len(events)} events of the session; {len(recorded)} user message with key {key!r}")
        positions = [e["position"] for e in events]
        ok = (
            [a["duplicate"] for a in acks] == [False, True]
            and len(recorded) == 1
            and positions == sorted(set(positions))
            and seen <= set(positions)
        )
        summary = {
            "ok": ok,
            "session_id": session_id,
            "acks": acks,
            "answer": answer,
            "user_messages": len(recorded),
            "acted_as": recorded[0]["event"].get("principal") if recorded else None,
            "events": len(events),
            "live_events": len(seen),
        }
        print(json.dumps(summary), flush=True)
        return 0 if ok else 1
    finally:
        await nc.drain()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Chat with agentbus over NATS, as another service would.")
    parser.add_argument("text", nargs="?", default="hello from a Python service")
    parser.add_argument("--key", default=f"example-{uuid.uuid4().hex[:8]}", help="the idempotency key")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.text, args.key)))
