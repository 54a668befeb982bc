"""DBOS on the same PostgreSQL: a 15-step workflow, ms per durable step.

    .venv-bench/bin/python bench/peers/dbos_workflow.py --database-url URL

A workflow of 15 steps (5 experts x 3 rounds, each step returns a fixed speech,
no model), DBOS's system database on the given database: every step's output
is committed before the next step runs, as agentbus records each speech. One
new workflow id per run. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import time
import uuid
from importlib.metadata import version
from typing import Any

from _peer import ROUNDS, SPEAKERS, STEPS, Database, report, summary_ms


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from dbos import DBOS, DBOSConfig, SetWorkflowID

    @DBOS.step()
    def speak(name: str, round_: int) -> str:
        return f"{name}, round {round_}: a view."

    @DBOS.workflow()
    def meeting() -> list[str]:
        return [speak(name, round_) for round_ in range(1, ROUNDS + 1) for name in SPEAKERS]

    config: DBOSConfig = {
        "name": "agentbus-bench",
        "system_database_url": Database.parse(args.database_url).sqlalchemy_url(),
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()
    try:
        per_step: list[float] = []
        for i in range(args.runs + 1):  # the first run warms up
            workflow_id = uuid.uuid4().hex
            started = time.perf_counter()
            with SetWorkflowID(workflow_id):
                speeches = meeting()
            elapsed = time.perf_counter() - started
            if len(speeches) != STEPS:
                raise RuntimeError(f"expected {STEPS} speeches, got {len(speeches)}")
            if i:
                per_step.append(elapsed / STEPS)
        recorded = len(DBOS.list_workflow_steps(workflow_id))
    finally:
        DBOS.destroy()
    return {
        "version": version("dbos"),
        "steps": STEPS,
        "steps_recorded_per_run": recorded,
        "per_step_ms": summary_ms(per_step),
    }


if __name__ == "__main__":
    report(measure, __doc__ or "")
