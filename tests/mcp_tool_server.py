"""An MCP server for the tests, written with the official SDK: `python tests/mcp_tool_server.py stdio`
or `python tests/mcp_tool_server.py http <port>` (streamable HTTP on 127.0.0.1:<port>/mcp).

Its tools cover what agentbus must handle: plain text, an idempotent tool,
a tool whose call the policy has the user confirm, one it denies, an image,
a result too long to record whole, a request header, a name with a dot, a crash and a hang, and
two that mark a label in a file (one idempotent, one not), so a test counts a tool's effects.
Each start is appended to the file `MCP_TEST_STARTS` names, so a test sees a restart.
"""

from __future__ import annotations

import os
import sys

import anyio
from mcp.server.mcpserver import Context, Image, MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("agentbus-test")


@server.tool(annotations=ToolAnnotations(idempotent_hint=True))
def echo(text: str) -> str:
    """Say the text back."""
    return f"echo: {text}"


@server.tool(annotations=ToolAnnotations(idempotent_hint=False))
def write_note(text: str) -> str:
    """Write a note (the policy makes the user confirm each call)."""
    return f"noted: {text}"


@server.tool()
def erase_everything() -> str:
    """Erase everything (the policy denies it: it must never be offered)."""
    return "erased"


@server.tool()
def picture() -> Image:
    """Draw a picture."""
    return Image(data=b"\x89PNG\r\n\x1a\n" + bytes(100), format="png")


@server.tool()
def long_text(size: int) -> str:
    """Write `size` characters."""
    return "é" * size


@server.tool()
def header(name: str, ctx: Context) -> str:
    """Say the value of a request header (over HTTP)."""
    return f"{name}: {(ctx.headers or {}).get(name.lower(), '(none)')}"


@server.tool(name="lookup.v2")
def lookup(key: str) -> str:
    """A name with a dot, which MCP allows and function names of OpenAI-compatible servers do not."""
    return f"found {key}"


def _mark(label: str, ctx: Context) -> int:
    """Append `<label> <effect key> <attempt>` to the file `MCP_TEST_EFFECTS` names (the effect the tests
    count, outside the worker); return how many runs of `label` it holds now."""
    meta = ctx.request_context.meta or {}
    path = os.environ["MCP_TEST_EFFECTS"]
    with open(path, "a") as effects:
        effects.write(f"{label} {meta.get('agentbus/effect_key', '-')} {meta.get('agentbus/attempt', '-')}\n")
    with open(path) as effects:
        return sum(1 for line in effects if line.split()[0] == label)


@server.tool(annotations=ToolAnnotations(idempotent_hint=False))
async def mark(label: str, ctx: Context, block_first: bool = False) -> str:
    """Mark `label` once per call; with `block_first`, the first run of a label never answers (the test kills)."""
    runs = _mark(label, ctx)
    if block_first and runs == 1:
        await anyio.sleep_forever()
    return f"marked {label} (run {runs})"


@server.tool(annotations=ToolAnnotations(idempotent_hint=True))
async def mark_idempotent(label: str, ctx: Context, block_first: bool = False) -> str:
    """The same as `mark`, declared idempotent."""
    return await mark(label, ctx, block_first)


@server.tool()
def crash() -> str:
    """Kill the server process in the middle of the call."""
    os._exit(3)


@server.tool()
async def hang() -> str:
    """Never answer."""
    await anyio.sleep_forever()
    return "never"


if __name__ == "__main__":
    if starts := os.environ.get("MCP_TEST_STARTS"):
        with open(starts, "a") as log:
            log.write(f"{os.getpid()}\n")
    if sys.argv[1] == "stdio":
        server.run()
    else:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
