"""Numbers a benchmark reports: nearest-rank percentiles, medians, latency summaries."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def percentile(sorted_values: Sequence[int | float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values: the smallest value with at
    least ``pct`` percent of the values at or below it. Exact, no interpolation."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 < pct <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {pct}")
    # Rounded first: 99.9 / 100 * 2000 is 1998.0000000000002 in floating point.
    rank = math.ceil(round(pct * len(sorted_values) / 100, 9))
    return float(sorted_values[max(rank, 1) - 1])


def median(values: Iterable[float]) -> float:
    """The middle value (mean of the two middle ones for an even count)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("median of no values")
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[mid])
    return (ordered[mid - 1] + ordered[mid]) / 2


@dataclass(frozen=True)
class LatencySummary:
    """Latency in microseconds over ``count`` timed messages."""

    count: int
    mean_us: float
    p50_us: float
    p90_us: float
    p99_us: float
    p999_us: float
    max_us: float


def summarize_latencies(samples_ns: Iterable[int]) -> LatencySummary | None:
    ordered = sorted(samples_ns)
    if not ordered:
        return None
    return LatencySummary(
        count=len(ordered),
        mean_us=sum(ordered) / len(ordered) / 1000,
        p50_us=percentile(ordered, 50) / 1000,
        p90_us=percentile(ordered, 90) / 1000,
        p99_us=percentile(ordered, 99) / 1000,
        p999_us=percentile(ordered, 99.9) / 1000,
        max_us=ordered[-1] / 1000,
    )
