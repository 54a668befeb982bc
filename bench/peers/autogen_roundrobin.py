"""AutoGen's RoundRobinGroupChat: 5 experts x 3 rounds on ReplayChatCompletionClient (zero latency).

    .venv-bench/bin/python bench/peers/autogen_roundrobin.py --database-url URL

The peer of agentbus's board meeting without its model: each expert is an
AssistantAgent whose model client replays a fixed answer at once, so what is
timed is the group chat's own orchestration, per speech. It keeps its state in
memory (nothing is recorded: there is no database in this peer). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from importlib.metadata import version
from typing import Any

from _peer import ROUNDS, SPEAKERS, STEPS, report, summary_ms

TOPIC = "Should we move our monolith to microservices?"


def _team() -> Any:
    from autogen_agentchat.agents import AssistantAgent
    from autogen_agentchat.teams import RoundRobinGroupChat
    from autogen_ext.models.replay import ReplayChatCompletionClient

    experts = [
        AssistantAgent(
            name,
            model_client=ReplayChatCompletionClient(
                [f"{name}, round {r}: a view on the topic." for r in range(ROUNDS)]
            ),
            system_message=f"You are the {name} of a board meeting.",
        )
        for name in SPEAKERS
    ]
    return RoundRobinGroupChat(experts, max_turns=STEPS)


async def _measure(runs: int) -> dict[str, Any]:
    per_speech: list[float] = []
    for i in range(runs + 1):  # the first run warms up (imports, first allocations)
        team = _team()
        started = time.perf_counter()
        result = await team.run(task=TOPIC)
        elapsed = time.perf_counter() - started
        speeches = [m for m in result.messages if m.source in SPEAKERS]
        if len(speeches) != STEPS:
            raise RuntimeError(f"expected {STEPS} speeches, got {len(speeches)}: {result.stop_reason}")
        if i:
            per_speech.append(elapsed / STEPS)
    return {"version": version("autogen-agentchat"), "steps": STEPS, "per_speech_ms": summary_ms(per_speech)}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    return asyncio.run(_measure(args.runs))


if __name__ == "__main__":
    report(measure, __doc__ or "")
