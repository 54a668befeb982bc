"""The built-in tools: calculator, clock, ask_human, advance_phase and delete_upload (needs confirmation)."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import msgspec

from .base import Tool, ToolError, ToolRegistry
from .calculator import evaluate, format_number

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


class DeleteUploadArgs(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    filename: str


async def calculator(args: CalculatorArgs) -> str:
    return f"{args.expression.strip()} = {format_number(evaluate(args.expression))}"


async def clock(args: ClockArgs) -> str:
    if args.timezone.upper() not in ("UTC", "Z", "GMT"):
        raise ToolError(f"unknown time zone {args.timezone!r}; only UTC is available")
    now = datetime.now(UTC)
    return f"It is {now:%H:%M} UTC on {now:%A, %d %B %Y} ({now.isoformat(timespec='seconds')})."


_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")


def upload_dir() -> Path:
    """Where uploads live: `$AGENTBUS_UPLOAD_DIR`, else `<data dir>/uploads`."""
    explicit = os.environ.get("AGENTBUS_UPLOAD_DIR")
    return Path(explicit) if explicit else Path(os.environ.get("AGENTBUS_DATA_DIR", ".agentbus")) / "uploads"


async def delete_upload(args: DeleteUploadArgs) -> str:
    name = args.filename.strip()
    if not _SAFE_NAME.fullmatch(name) or name.startswith("."):
        raise ToolError(f"{name!r} is not an upload name (letters, digits, . _ - only)")
    path = upload_dir() / name
    if not path.is_file():
        return f"There is no upload named {name}; nothing was deleted."
    path.unlink()
    return f"Deleted the upload {name}."


BUILTIN_TOOLS = ToolRegistry(
    [
        Tool(
            name="calculator",
            description="Evaluate an arithmetic expression exactly.",
            args=CalculatorArgs,
            run=calculator,
        ),
        Tool(name="clock", description="Tell the current date and time (UTC).", args=ClockArgs, run=clock),
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
            name="delete_upload",
            description="Delete an uploaded file by name. The user must confirm first.",
            args=DeleteUploadArgs,
            run=delete_upload,
            needs_confirmation=True,
        ),
    ]
)
"""Every tool agents and skills can name in the configuration."""
