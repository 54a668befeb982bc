"""The built-in tools: calculator, clock, ask_human, advance_phase, read_upload and delete_upload (needs confirmation)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import msgspec

from .base import Tool, ToolContext, ToolError, ToolRegistry
from .calculator import evaluate, format_number
from .uploads import DeleteUploadArgs, ReadUploadArgs, delete_upload, read_upload

Arithmetic = Annotated[str, msgspec.Meta(pattern="^[0-9 .+*/()%^-]+$")]
"""Digits, operators and parentheses. It is in the tool's JSON Schema, so a server that constrains
generation to the schema (llama.cpp does) cannot let a small model break the arguments; the pattern
is kept to what llama.cpp's grammars can express (no `\\s`, no counted repetition)."""


class CalculatorArgs(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    expression: Arithmetic
    """Arithmetic such as `17*23` or `(2+3)**2`."""


class ClockArgs(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    timezone: str = "UTC"
    """Only UTC is known; other names are reported back as unknown."""


class AskHumanArgs(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    question: str


class AdvancePhaseArgs(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    summary: str = ""
    """What the finished phase achieved."""


async def calculator(args: CalculatorArgs, _: ToolContext) -> str:
    return f"{args.expression.strip()} = {format_number(evaluate(args.expression))}"


async def clock(args: ClockArgs, _: ToolContext) -> str:
    if args.timezone.upper() not in ("UTC", "Z", "GMT"):
        raise ToolError(f"unknown time zone {args.timezone!r}; only UTC is available")
    now = datetime.now(UTC)
    return f"It is {now:%H:%M} UTC on {now:%A, %d %B %Y} ({now.isoformat(timespec='seconds')})."


BUILTIN_TOOLS = ToolRegistry(
    [
        Tool(
            name="calculator",
            description="Evaluate an arithmetic expression exactly.",
            args=CalculatorArgs,
            run=calculator,
            idempotent=True,
        ),
        Tool(
            name="clock",
            description="Tell the current date and time (UTC).",
            args=ClockArgs,
            run=clock,
            idempotent=True,
        ),
        Tool(
            name="ask_human",
            description="Ask the user a question when you need information only they have; wait for the answer.",
            args=AskHumanArgs,
            kind="ask_human",
        ),
        Tool(
            name="advance_phase",
            description="Finish the current phase of a plan_exec turn and move to the next one.",
            args=AdvancePhaseArgs,
            kind="advance_phase",
        ),
        Tool(
            name="read_upload",
            description="Read an uploaded file by its stored name: its text (the first max_bytes), or what it is if binary.",
            args=ReadUploadArgs,
            run=read_upload,
            idempotent=True,
        ),
        Tool(
            name="delete_upload",
            description="Delete an uploaded file by its stored name. The user must confirm first.",
            args=DeleteUploadArgs,
            run=delete_upload,
            needs_confirmation=True,
        ),
    ]
)
"""Every tool agents and skills can name in the configuration."""
