"""Board meeting wall time and overhead per speech, against the raw work the meeting is made of.

The system path: a WebSocket `@board:<5 experts> rounds=3 <topic>` to `agentbus
up` → session actor → board actor → for each of 15 speeches, 3 summaries and 1
conclusion: a NATS request to an expert actor, the offline provider streaming
chunks onto NATS, the event appended and relayed → `final_answer`. The
baseline is the same work with no system around it, in this process: the
same 19 offline-provider generations on the same prompts (each transcript
growing as the meeting's does), and one raw asyncpg INSERT per event the
meeting records (22), one after the other. Overhead per speech is the
difference in wall time divided by the 15 speeches.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from itertools import pairwise

import asyncpg
import msgspec

from actors.board.conclusion import parse_conclusion
from actors.board.logic import final_answer
from actors.board.prompts import llm_request, split_consensus
from actors.llm import OfflineProvider, TextDelta
from cli.settings import Endpoints
from projections.database import asyncpg_dsn
from schemas import tag_of
from schemas.events import (
    AnyEvent,
    AssistantMessage,
    BoardStarted,
    ExpertProfile,
    ExpertSpeech,
    RoundSummary,
    UserMessage,
)
from schemas.experts import BoardRequest, Conclude, Speak, SummarizeRound, TranscriptEntry

from ._services import runs_on_one_session
from .append import _RAW_DDL, _RAW_INSERT, RAW_TABLE

EXPERTS = ["pragmatist", "skeptic", "visionary", "economist", "operator"]
ROUNDS = 3
TOPIC = "Should we move our monolith to microservices?"
SPEECHES = len(EXPERTS) * ROUNDS
STEPS = SPEECHES + ROUNDS + 1  # speeches, round summaries, the conclusion
TIMEOUT = 120.0


class BoardError(RuntimeError):
    """A board did not run as the protocol says."""


@dataclass(frozen=True, slots=True)
class BoardRun:
    wall: float  # seconds from the message sent to the final answer
    speech_gaps: list[float]  # seconds between consecutive recorded speeches (and from the start to the first)


async def measure_boards(endpoints: Endpoints, boards: int, *, warmup: int = 1) -> list[BoardRun]:
    """Run `warmup + boards` boards in sequence on one session; return the measured ones."""
    return await runs_on_one_session(endpoints, _board, boards, warmup=warmup, timeout=TIMEOUT)


async def _board(ws) -> BoardRun:
    sent = time.perf_counter()
    await ws.send(json.dumps({"type": "message", "content": f"@board:{','.join(EXPERTS)} rounds={ROUNDS} {TOPIC}"}))
    speeches: list[float] = []
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        kind = frame.get("type")
        if kind == "expert_speech":
            speeches.append(time.perf_counter())
        elif kind == "final_answer":
            wall = time.perf_counter() - sent
            if len(speeches) != SPEECHES or f"_{ROUNDS} rounds of discussion_" not in frame.get("content", ""):
                raise BoardError(f"expected {SPEECHES} speeches and {ROUNDS} rounds, got {len(speeches)}: {frame}")
            gaps = [b - a for a, b in pairwise([sent, *speeches])]
            return BoardRun(wall=wall, speech_gaps=gaps)
        elif kind == "error":
            raise BoardError(f"error frame during the board: {frame}")


async def measure_raw(database_url: str, boards: int) -> list[float]:
    """Time the baseline `boards` times: the meeting's generations and one raw INSERT per event, in sequence."""
    provider = OfflineProvider(delay=0.0)
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for statement in _RAW_DDL:
            await conn.execute(statement)
        walls: list[float] = []
        for _ in range(boards):
            started = time.perf_counter()
            stream, version = f"board-{uuid.uuid4().hex}", 0
            for event in await _meeting(provider):
                version += 1
                data = msgspec.json.encode(event).decode()
                await conn.execute(
                    _RAW_INSERT, stream, version, "bench", tag_of(type(event)), 1, data, "{}", uuid.uuid4()
                )
            walls.append(time.perf_counter() - started)
        await conn.execute(f"DROP TABLE {RAW_TABLE}")
        return walls
    finally:
        await conn.close()


async def _meeting(provider: OfflineProvider) -> list[AnyEvent]:
    """Generate what a meeting says, as its experts would (same prompts), and the events it records."""
    moderator = ExpertProfile(name="moderator", is_moderator=True)
    experts = [ExpertProfile(name=name) for name in EXPERTS]
    content = f"@board:{','.join(EXPERTS)} rounds={ROUNDS} {TOPIC}"
    events: list[AnyEvent] = [
        UserMessage(message_id="m", content=content, idempotency_key="k"),
        BoardStarted(board_id="b", topic=TOPIC, experts=[moderator, *experts], max_rounds=ROUNDS),
    ]
    transcript: list[TranscriptEntry] = []
    for round_ in range(1, ROUNDS + 1):
        for expert in experts:
            text = await _generate(provider, Speak, expert, round_, transcript)
            transcript.append(TranscriptEntry(kind="speech", round=round_, speaker=expert.name, content=text))
            events.append(ExpertSpeech(board_id="b", round=round_, expert_name=expert.name, content=text))
        text, consensus = split_consensus(await _generate(provider, SummarizeRound, moderator, round_, transcript))
        transcript.append(TranscriptEntry(kind="summary", round=round_, speaker="moderator", content=text))
        events.append(
            RoundSummary(board_id="b", round=round_, moderator_name="moderator", content=text, consensus=consensus)
        )
    summaries = [entry.content for entry in transcript if entry.kind == "summary"]
    answer = await _generate(provider, Conclude, moderator, ROUNDS, transcript)
    concluded = parse_conclusion(answer, board_id="b", total_rounds=ROUNDS, summaries=summaries)
    events += [concluded, AssistantMessage(message_id="a", content=final_answer(concluded), agent_name="board_meeting")]
    return events


async def _generate(
    provider: OfflineProvider,
    kind: type[BoardRequest],
    expert: ExpertProfile,
    round_: int,
    transcript: list[TranscriptEntry],
) -> str:
    request = kind(
        expert_id="x", board_id="b", session_id="s", expert=expert, model="offline", topic=TOPIC, round=round_,
        max_rounds=ROUNDS, transcript=list(transcript),
    )  # fmt: skip
    return "".join([d.text async for d in provider.stream(llm_request(request)) if isinstance(d, TextDelta)])
