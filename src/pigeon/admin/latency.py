"""Per-queue end-to-end latency: publish -> deliver and publish -> ack.

The core stamps every message with ``published_at`` (monotonic ns) and tells
its observers when a message is delivered and when it is acknowledged; a
:class:`LatencyRecorder` is such an observer. It keeps fixed-bucket
histograms (cheap: one bisect and two additions per message) that serve both
Prometheus and the API's mean/p50/p99.
"""

from __future__ import annotations

import bisect
import time
from typing import Any, Protocol

from pigeon.core.node import Node

# Upper bounds in seconds, from 100 µs to 1 min: a broker's latency spans both ends.
BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


class _Entry(Protocol):
    @property
    def message(self) -> Any: ...


class _Queue(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def vhost(self) -> str: ...


class Histogram:
    __slots__ = ("counts", "sum", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.total = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds
        self.total += 1

    def merge(self, other: Histogram) -> None:
        for index, count in enumerate(other.counts):
            self.counts[index] += count
        self.sum += other.sum
        self.total += other.total

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus buckets: (upper bound, observations at or below it)."""
        rows: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*BUCKETS, float("inf")), self.counts, strict=True):
            running += count
            rows.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return rows

    def quantile(self, q: float) -> float | None:
        """Estimate by linear interpolation inside the bucket, as Prometheus does."""
        if not self.total:
            return None
        rank = q * self.total
        running = 0
        for index, count in enumerate(self.counts):
            if running + count >= rank and count:
                low = BUCKETS[index - 1] if index > 0 else 0.0
                high = BUCKETS[index] if index < len(BUCKETS) else BUCKETS[-1]
                return low + (high - low) * (rank - running) / count
            running += count
        return BUCKETS[-1]

    def summary(self) -> dict[str, Any]:
        """Mean, p50 and p99 in milliseconds, for the API and the UI."""

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 3)

        return {
            "count": self.total,
            "mean_ms": ms(self.sum / self.total) if self.total else None,
            "p50_ms": ms(self.quantile(0.5)),
            "p99_ms": ms(self.quantile(0.99)),
        }


class LatencyRecorder:
    """A delivery observer: one pair of histograms per queue (vhost, name)."""

    def __init__(self) -> None:
        self.deliver: dict[tuple[str, str], Histogram] = {}
        self.ack: dict[tuple[str, str], Histogram] = {}

    def delivered(self, queue: _Queue, entry: _Entry) -> None:
        self._observe(self.deliver, queue, entry)

    def acked(self, queue: _Queue, entry: _Entry) -> None:
        self._observe(self.ack, queue, entry)

    @staticmethod
    def _observe(table: dict[tuple[str, str], Histogram], queue: _Queue, entry: _Entry) -> None:
        published = entry.message.published_at
        if not published:
            return
        key = (queue.vhost, queue.name)
        histogram = table.get(key)
        if histogram is None:
            histogram = table[key] = Histogram()
        histogram.observe(max(0, time.monotonic_ns() - published) / 1e9)

    def forget(self, live: set[tuple[str, str]]) -> None:
        """Drop the histograms of queues that no longer exist."""
        for table in (self.deliver, self.ack):
            for key in [k for k in table if k not in live]:
                del table[key]

    def queue_summary(self, vhost: str, name: str) -> dict[str, Any]:
        empty = Histogram()
        return {
            "publish_to_deliver": self.deliver.get((vhost, name), empty).summary(),
            "publish_to_ack": self.ack.get((vhost, name), empty).summary(),
        }

    def attach(self, node: Node) -> bool:
        """Register with the core's delivery observers; False if the core has none yet."""
        observers: Any = getattr(node, "observers", None)
        if not isinstance(observers, list):
            return False
        observers.append(self)
        return True

    def detach(self, node: Node) -> None:
        observers: Any = getattr(node, "observers", None)
        if isinstance(observers, list) and self in observers:
            observers.remove(self)
