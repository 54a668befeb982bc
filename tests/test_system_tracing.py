"""Every hop traced: one turn through the gateway is one trace across processes; with tracing off, nothing is."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import msgspec
import nats
import websockets
from nats.aio.msg import Msg

from bench.otlp_receiver import OtlpReceiver, Span
from schemas import RecordedEvent, codec
from tests.system import System, receive_until

ROOT = "POST /sessions/{session_id}/messages"
HOPS = [
    ("agentbus", ROOT),
    ("agentbus", "publish command"),
    ("agentbus-worker", "take command"),
    ("agentbus-worker", "session handle"),
    ("agentbus-worker", "eventlog append"),
    ("agentbus-worker", "relay publish"),
    ("agentbus", "gateway receive"),
]
"""The hops of a turn's answer, from the REST call to the gateway receiving the event that answers it, in order."""


def ancestry(span: Span, by_id: dict[str, Span]) -> list[Span] | None:
    """`span` and its parents up to the trace's root, root first; None while a parent has not been received."""
    line = [span]
    while line[-1].parent_id is not None:
        parent = by_id.get(line[-1].parent_id)
        if parent is None:
            return None
        line.append(parent)
    return line[::-1]


def follows(line: list[Span], hops: list[tuple[str, str]]) -> bool:
    """Whether the (service, name) of `line` holds `hops` in order (other spans may come between)."""
    remaining = iter((span.service, span.name) for span in line)
    return all(hop in remaining for hop in hops)


def answered_through_every_hop(spans: list[Span], session_id: str) -> list[Span] | None:
    """The hops from the turn's root to the gateway receiving its relayed answer, once all of them were exported."""
    roots = [s for s in spans if s.name == ROOT and s.attributes.get("agentbus.session_id") == session_id]
    if len(roots) != 1:
        return None
    trace = [s for s in spans if s.trace_id == roots[0].trace_id]
    by_id = {s.span_id: s for s in trace}
    for span in trace:
        if span.name == "gateway receive" and (line := ancestry(span, by_id)) and follows(line, HOPS):
            relayed = next(each for each in line if each.name == "relay publish")
            if relayed.attributes.get("agentbus.event") == "assistant_message":
                return line
    return None


async def test_a_turn_is_one_trace_from_the_gateway_over_nats_to_the_worker_the_log_the_relay_and_back(
    tmp_path: Path, system_env: dict[str, str]
) -> None:
    """The gateway and the worker are two processes (`--workers 2`): their spans link through NATS headers and the log."""
    receiver = OtlpReceiver()
    system = System(tmp_path / "up", {**system_env, **receiver.env()}).start(args=("--workers", "2"))
    try:
        session_id = await system.create_session()
        async with system.http() as client:
            response = await client.post(f"/sessions/{session_id}/messages", json={"content": "trace me"})
        assert response.status_code == 200, response.text
        found = await asyncio.to_thread(
            receiver.wait_for, lambda spans: answered_through_every_hop(spans, session_id) is not None, 30
        )
        assert found, sorted({(s.service, s.name) for s in receiver.spans})
        line = answered_through_every_hop(receiver.spans, session_id)
        assert line is not None
        trace = [s for s in receiver.spans if s.trace_id == line[0].trace_id]
        by_id = {s.span_id: s for s in trace}
        model = [s for s in trace if s.name == "llm stream"]
        assert model and "first token" in model[0].events
        model_line = ancestry(model[0], by_id)
        assert model_line is not None and follows(model_line, [*HOPS[:4], ("agentbus-worker", "turn handle")])
        # The token frames the turn published live are received by the gateway in the same trace.
        assert any(s.name == "gateway receive" and by_id.get(s.parent_id or "") is model[0] for s in trace)
    finally:
        assert system.stop() == 0
        receiver.close()


STEP_HOPS = [("agentbus-worker", "board step"), ("agentbus-worker", "bus request")]
EXPERT_HOPS = [
    ("agentbus-worker", "bus serve"),
    ("agentbus-worker", "expert handle"),
    ("agentbus-worker", "llm stream"),
]
"""A board step asks its expert over NATS; the expert may answer on the other worker, in the same trace."""
SHOWN_HOPS = [
    ("agentbus", "ws send_message"),
    ("agentbus-worker", "board step"),
    ("agentbus-worker", "board handle"),
    ("agentbus-worker", "eventlog append"),
    ("agentbus-worker", "relay publish"),
    ("agentbus", "gateway receive"),
    ("agentbus", "ws send"),
]
"""A step's recorded speech, relayed, reaches the socket that sent the `@board` message."""


def board_steps_traced(spans: list[Span], trace_id: str) -> bool:
    """Whether a step's expert call and a step's speech on the socket are in the trace, every parent received."""
    trace = [s for s in spans if s.trace_id == trace_id]
    by_id = {s.span_id: s for s in trace}
    lines = [line for span in trace if (line := ancestry(span, by_id))]
    return any(follows(line, [*STEP_HOPS, *EXPERT_HOPS]) for line in lines) and any(
        follows(line, SHOWN_HOPS) for line in lines
    )


async def test_a_board_over_the_socket_is_one_trace_whose_steps_reach_an_expert_and_come_back_to_the_socket(
    tmp_path: Path, system_env: dict[str, str]
) -> None:
    receiver = OtlpReceiver()
    system = System(tmp_path / "up", {**system_env, **receiver.env()}).start(args=("--workers", "2"))
    try:
        session_id = await system.create_session()
        async with websockets.connect(system.ws_base + session_id) as ws:
            await receive_until(ws, "connected")
            await ws.send(json.dumps({"type": "message", "content": "@board:skeptic,economist rounds=1 trace me"}))
            frames = await receive_until(ws, "final_answer", timeout=60)
        assert any(frame["type"] == "expert_speech" for frame in frames)

        def traced(spans: list[Span]) -> bool:
            roots = [s for s in spans if s.name == "ws send_message" and s.parent_id is None]
            return len(roots) == 1 and board_steps_traced(spans, roots[0].trace_id)

        found = await asyncio.to_thread(receiver.wait_for, traced, 30)
        assert found, sorted({(s.service, s.name) for s in receiver.spans})
    finally:
        assert system.stop() == 0
        receiver.close()


async def test_with_tracing_off_no_span_is_exported_and_no_message_carries_a_trace_context(
    tmp_path: Path, system_env: dict[str, str], nats_url: str, subject_prefix: str
) -> None:
    """An OTLP endpoint alone does not turn tracing on: OTEL_TRACES_EXPORTER is not set."""
    receiver = OtlpReceiver()
    env = {**system_env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.endpoint}
    system = System(tmp_path / "up", env).start(args=("--workers", "2"))
    watcher = await nats.connect(nats_url)
    headers: list[dict[str, str]] = []
    metas: list[str | None] = []

    async def watch(msg: Msg) -> None:
        headers.append(dict(msg.headers or {}))
        if msg.subject.endswith(".evt"):
            item = codec.feed.decode(msg.data)
            if isinstance(item, RecordedEvent):
                metas.append(item.meta.traceparent)

    try:
        await watcher.subscribe(f"{subject_prefix}.session.>", cb=watch)
        await watcher.flush()  # the subscription is in force before anything is sent
        session_id = await system.create_session()
        async with system.http() as client:
            response = await client.post(f"/sessions/{session_id}/messages", json={"content": "do not trace me"})
        assert response.status_code == 200, response.text
        await watcher.flush()
    finally:
        await watcher.close()
        assert system.stop() == 0  # a process that traced would have exported its last spans as it stopped
    receiver.close()
    assert receiver.requests == 0 and receiver.spans == []
    assert any("Nats-Msg-Id" in each for each in headers), "the command was not seen"
    assert metas and set(metas) == {None}
    assert not [each for each in headers if "traceparent" in each]
    assert msgspec.json.decode(response.content)["content"]
