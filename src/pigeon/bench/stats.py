"""Numbers a benchmark reports: percentiles, medians, and a process's CPU and memory."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def percentile(sorted_values: Sequence[int | float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values: the smallest value with at
    least ``pct`` percent of the values at or below it. Exact, no interpolation."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 < pct <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {pct}")
    rank = math.ceil(pct / 100 * len(sorted_values))
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
        p99_us=percentile(ordered, 99) / 1000,
        p999_us=percentile(ordered, 99.9) / 1000,
        max_us=ordered[-1] / 1000,
    )


@dataclass(frozen=True)
class ProcSample:
    """CPU seconds (user + system) and resident memory of one process."""

    cpu_s: float
    rss_bytes: int


def sample_process(pid: int) -> ProcSample:
    """Read ``/proc/<pid>/stat`` (utime, stime: fields 14 and 15) and ``statm``."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    # The command name (field 2) may hold spaces; fields after it follow ')'.
    fields = stat[stat.rindex(b")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    with open(f"/proc/{pid}/statm", "rb") as f:
        resident_pages = int(f.read().split()[1])
    return ProcSample(cpu_s=cpu, rss_bytes=resident_pages * os.sysconf("SC_PAGE_SIZE"))
