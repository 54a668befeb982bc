"""A calculator that parses arithmetic with `ast` and evaluates only numbers and operators (never `eval`)."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable

from .base import ToolError

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
MAX_EXPRESSION = 200
# Bounds keep a "calculation" from eating the worker's CPU or memory (9**9**9 would).
MAX_EXPONENT = 1000
MAX_MAGNITUDE = 10**100


def evaluate(expression: str) -> int | float:
    """Evaluate an arithmetic expression (`+ - * / // % **`, `^` as power, parentheses); raise `ToolError`."""
    text = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/")
    if not text:
        raise ToolError("empty expression")
    if len(text) > MAX_EXPRESSION:
        raise ToolError(f"expression longer than {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ToolError(f"not an arithmetic expression: {expression!r}") from None
    return _value(tree.body)


def _value(node: ast.expr) -> int | float:
    match node:
        case ast.Constant(value=bool()):
            raise ToolError("only numbers are allowed")
        case ast.Constant(value=int() | float() as number):
            return number
        case ast.UnaryOp(op=op, operand=operand) if type(op) in _UNARY:
            return _UNARY[type(op)](_value(operand))
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY:
            a, b = _value(left), _value(right)
            if isinstance(op, ast.Pow) and abs(b) > MAX_EXPONENT:
                raise ToolError(f"exponent larger than {MAX_EXPONENT}")
            try:
                result = _BINARY[type(op)](a, b)
            except ZeroDivisionError:
                raise ToolError("division by zero") from None
            except OverflowError:
                raise ToolError("result too large") from None
            if isinstance(result, complex) or abs(result) > MAX_MAGNITUDE:
                raise ToolError("result too large or not a real number")
            return result
    raise ToolError(f"only numbers and + - * / // % ** are allowed, not {type(node).__name__}")


def format_number(value: int | float) -> str:
    """Show integral results without a fraction (`391`, not `391.0`)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)
