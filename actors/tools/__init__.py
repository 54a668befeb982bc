"""Tools agents can call: plain async functions with a typed argument Struct, registered by name."""

from .base import InvalidArguments, Tool, ToolContext, ToolError, ToolKind, ToolRegistry
from .builtin import BUILTIN_TOOLS
from .calculator import evaluate, format_number

__all__ = [
    "BUILTIN_TOOLS",
    "InvalidArguments",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolKind",
    "ToolRegistry",
    "evaluate",
    "format_number",
]
