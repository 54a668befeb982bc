"""Prompt budgets: what is sent to a model is the newest part of a conversation that fits.

Counts are estimates (about four characters a token for English): enough to
keep a request inside a small model's context and a NATS message, not billing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def estimate_tokens(text: str) -> int:
    """A cheap estimate of the tokens `text` takes."""
    return len(text) // 4 + 1


def newest_that_fit(
    items: Sequence[T], budget: int, cost: Callable[[T], int], *, always: frozenset[int] = frozenset()
) -> list[T]:
    """The newest `items` whose costs add up to at most `budget`, in their order, plus those at the `always` indexes."""
    keep = {index for index in always if 0 <= index < len(items)}
    spent = sum(cost(items[index]) for index in keep)
    for index in range(len(items) - 1, -1, -1):
        if index in keep:
            continue
        spent += cost(items[index])
        if spent > budget:
            break
        keep.add(index)
    return [item for index, item in enumerate(items) if index in keep]
