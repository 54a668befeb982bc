"""A raw nats-py responder that echoes every request: the baseline's other process.

    python -m bench._echo <nats_url> <subject>

Prints `ready` once subscribed, then serves until terminated.
"""

from __future__ import annotations

import asyncio
import sys

import nats

from bus import nats_servers


async def serve(url: str, subject: str) -> None:
    nc = await nats.connect(nats_servers(url), name="bench-echo")

    async def echo(msg) -> None:
        await msg.respond(msg.data)

    await nc.subscribe(subject, cb=echo)
    await nc.flush()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2]))
