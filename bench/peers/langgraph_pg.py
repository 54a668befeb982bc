"""LangGraph with the Postgres checkpointer: a 15-step round-robin graph, ms per durable step.

    .venv-bench/bin/python bench/peers/langgraph_pg.py --database-url URL

Five expert nodes speak in turn for three rounds (15 steps; each node appends a
fixed speech, no model), on `PostgresSaver` (langgraph-checkpoint-postgres,
psycopg 3) with `durability="sync"`: every step's checkpoint is committed before
the next step starts, as agentbus records each speech before the next. One new
thread per run. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import operator
import time
import uuid
from importlib.metadata import version
from typing import Annotated, Any, TypedDict

from _peer import SPEAKERS, STEPS, Database, report, summary_ms


class Meeting(TypedDict):
    transcript: Annotated[list[str], operator.add]


def _graph(checkpointer: Any) -> Any:
    from langgraph.graph import END, START, StateGraph

    builder = StateGraph(Meeting)
    for index, name in enumerate(SPEAKERS):

        def speak(state: Meeting, name: str = name) -> dict[str, list[str]]:
            return {"transcript": [f"{name}, round {len(state['transcript']) // len(SPEAKERS) + 1}: a view."]}

        following = SPEAKERS[(index + 1) % len(SPEAKERS)]

        def route(state: Meeting, following: str = following) -> str:
            return END if len(state["transcript"]) >= STEPS else following

        builder.add_node(name, speak)
        builder.add_conditional_edges(name, route, [following, END])
    builder.add_edge(START, SPEAKERS[0])
    return builder.compile(checkpointer=checkpointer)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg import Connection
    from psycopg.rows import dict_row

    database = Database.parse(args.database_url)
    with Connection.connect(database.conninfo(), autocommit=True, prepare_threshold=0, row_factory=dict_row) as conn:
        saver = PostgresSaver(conn)
        saver.setup()
        graph = _graph(saver)
        per_step: list[float] = []
        for i in range(args.runs + 1):  # the first run warms up
            config = {"configurable": {"thread_id": uuid.uuid4().hex}}
            started = time.perf_counter()
            final = graph.invoke({"transcript": []}, config, durability="sync")
            elapsed = time.perf_counter() - started
            if len(final["transcript"]) != STEPS:
                raise RuntimeError(f"expected {STEPS} speeches, got {len(final['transcript'])}")
            if i:
                per_step.append(elapsed / STEPS)
        checkpoints = conn.execute(
            "SELECT count(*) AS n FROM checkpoints WHERE thread_id = %s", [config["configurable"]["thread_id"]]
        ).fetchone()
    return {
        "version": version("langgraph"),
        "checkpoint_postgres": version("langgraph-checkpoint-postgres"),
        "steps": STEPS,
        "checkpoints_per_run": checkpoints["n"] if checkpoints else 0,
        "per_step_ms": summary_ms(per_step),
    }


if __name__ == "__main__":
    report(measure, __doc__ or "")
