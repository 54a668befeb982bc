"""eventsourcing's PostgreSQL recorder: events/s saving 1 event per save, and batches of 100.

    .venv-bench/bin/python bench/peers/eventsourcing_pg.py --database-url URL

The shapes of bench.append's cases (a) and (c): one writer, one aggregate, a
100-character payload per event; each `Application.save` is one transaction of
the application recorder (which locks the table for gap-free notification ids,
as agentbus's log orders its positions). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import os
from importlib.metadata import version
from typing import Any

from _peer import CONTENT, Database, report, summary_ms, timed

SINGLE_SAVES = 2000  # bench.append Counts.single
BATCHES = 200  # bench.append Counts.batches
BATCH_SIZE = 100


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class Conversation(Aggregate):
        @event("Said")
        def say(self, content: str) -> None:
            self.last = content

    database = Database.parse(args.database_url)
    os.environ.update(
        PERSISTENCE_MODULE="eventsourcing.postgres",
        POSTGRES_DBNAME=database.name,
        POSTGRES_HOST=database.host,
        POSTGRES_PORT=str(database.port),
        POSTGRES_USER=database.user,
        POSTGRES_PASSWORD=database.password,
        CREATE_TABLE="y",
    )
    app: Application[Any] = Application()
    try:

        def case(saves: int, size: int) -> dict[str, Any]:
            aggregate = Conversation()
            app.save(aggregate)

            def save() -> None:
                for _ in range(size):
                    aggregate.say(CONTENT)
                app.save(aggregate)

            timed(save, 20)  # warm-up: connections, prepared statements
            samples = timed(save, saves)
            elapsed = sum(samples)
            return {
                "saves": saves,
                "events": saves * size,
                "events_per_second": saves * size / elapsed,
                "per_save_ms": summary_ms(samples),
            }

        single = case(SINGLE_SAVES, 1)
        batch = case(BATCHES, BATCH_SIZE)
    finally:
        app.close()
    return {"version": version("eventsourcing"), "single": single, "batch": batch}


if __name__ == "__main__":
    report(measure, __doc__ or "")
