"""Latency summaries and the plain-text tables every benchmark prints."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Return the nearest-rank `p`-th percentile of already sorted values."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True, slots=True)
class Summary:
    """Distribution of one latency, in milliseconds."""

    n: int
    p50: float
    p90: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of_seconds(cls, samples: Sequence[float]) -> Summary:
        values = sorted(s * 1000 for s in samples)
        return cls(
            n=len(values),
            p50=percentile(values, 50),
            p90=percentile(values, 90),
            p99=percentile(values, 99),
            max=values[-1],
            mean=statistics.fmean(values),
        )

    def cells(self) -> list[str]:
        return [str(self.n), *(f"{v:.3f}" for v in (self.p50, self.p90, self.p99, self.max, self.mean))]


LATENCY_HEADERS = ["n", "p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms"]


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Render `rows` under `headers`; the first column is left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return "  ".join(
            [str(first).ljust(widths[0]), *(str(c).rjust(w) for c, w in zip(rest, widths[1:], strict=True))]
        )

    rule = "-" * len(line(headers))
    return "\n".join([title, rule, line(headers), rule, *(line(row) for row in rows), rule])


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}x" if baseline else "n/a"
