"""`agentbus mcp`: agentbus as a Model Context Protocol server over stdio, for IDEs and desktop assistants.

It serves the system of AGENTBUS_NATS_URL / AGENTBUS_DATABASE_URL, or the
running `agentbus up` of --data-dir, through a gateway run in this process
(`gateway.mcp`): the tools call its REST API, so they go through the bus as
every client does. It connects to NATS as a gateway (AGENTBUS_NATS_CREDENTIALS,
or the gateway credential of the `agentbus up` of --data-dir) but vouches for
no user: with an API key configured it presents that key and acts as the
service. stdout carries the protocol: logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from bus import Bus
from gateway import GatewayContext, create_app
from gateway.mcp import AgentbusTools
from projections import EventLog, ReadModels, create_engine
from schemas import Subjects

from .credentials import load_credential
from .serve import CLIENT_CLOSE, bounded, jwt_keys
from .settings import Settings, require_urls


def cmd_mcp(args: argparse.Namespace, settings: Settings) -> int:
    nats_url, database_url = require_urls(args, settings)
    credential = load_credential(_gateway_credential(args, settings))

    async def main() -> None:
        engine = create_engine(database_url)  # the running system migrated it
        try:
            bus = await Bus.connect(
                nats_url, name="agentbus-mcp", subjects=Subjects(settings.subject_prefix), credential=credential
            )
            try:
                event_log = EventLog(engine)
                ctx = GatewayContext(
                    bus=bus,
                    event_log=event_log,
                    read_models=ReadModels(engine),
                    api_key=settings.api_key,
                    jwt=jwt_keys(settings),
                    answer_timeout=settings.answer_timeout,
                )
                headers = {"X-API-Key": settings.api_key} if settings.api_key else {}
                tools = AgentbusTools(create_app(ctx), default_headers=headers)
                try:
                    await tools.server().run_stdio_async()
                finally:
                    await event_log.close()
            finally:
                await bounded("the NATS connection", bus.close, CLIENT_CLOSE)
        finally:
            await bounded("the database pool", engine.dispose, CLIENT_CLOSE)

    asyncio.run(main())
    return 0


def _gateway_credential(args: argparse.Namespace, settings: Settings) -> str | None:
    if settings.nats_credentials or settings.nats_url:
        return settings.nats_credentials
    # The embedded NATS of `agentbus up` keeps each role's seed under <data-dir>/nats (`bus.permissions`).
    seed = Path(args.data_dir) / "nats" / "gateway.nk"
    return str(seed) if seed.exists() else None
