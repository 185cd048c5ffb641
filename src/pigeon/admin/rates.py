"""Message counters and their rates over a sliding window.

The core only counts (``QueueStats``, and the vhost's publish counters when
it has them); it never times anything. A :class:`StatsSampler` reads every
counter each ``interval`` seconds on the broker's loop and keeps the samples
of the last ``window`` seconds, so a rate is "how much the counter grew over
the window, per second" (the ``*_details.rate`` of RabbitMQ's API). The core
adds a deleted queue's counters to the node's as it deletes it
(``NodeStats.deleted_queues``, read here as ``retired``), so the global totals
never go backwards, as a Prometheus counter must not, however short a queue's life.
"""

from __future__ import annotations

import time
from array import array
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pigeon.core.entry import QueueStats
from pigeon.core.exchange import Exchange
from pigeon.core.node import Node
from pigeon.core.queue import Queue
from pigeon.core.vhost import VirtualHost

Counters = dict[str, float]
# API name -> QueueStats field: what RabbitMQ calls each counter in ``message_stats``.
QUEUE_COUNTERS = {
    "publish": "published",
    "deliver_get": "delivered",
    "deliver": "consumed_manual_ack",
    "deliver_no_ack": "consumed_auto_ack",
    "get": "got_manual_ack",
    "get_no_ack": "got_auto_ack",
    "get_empty": "get_empty",
    "ack": "acked",
    "redeliver": "redelivered",
    "expired": "expired",
    "dropped": "dropped",
    "dead_lettered": "dead_lettered",
}
# Counters a vhost may keep itself (``VirtualHost.stats``): received from publishers,
# routed, unroutable, confirmed. Until the core has them they read as absent.
VHOST_COUNTERS = (
    "received",
    "received_confirm",
    "routed",
    "unroutable_dropped",
    "unroutable_returned",
    "confirmed",
)
DEAD_LETTER_REASONS = ("expired", "rejected", "maxlen", "delivery_limit")
GAUGES = ("messages", "messages_ready", "messages_unacknowledged")
# Sample history kept for charts, as RabbitMQ's ``sample_retention_policies`` (age, incr):
# the node-wide totals for a day; per-object counters as RabbitMQ's ``basic`` policy
# (5 s for ten minutes, 60 s for an hour).
GLOBAL_RETENTION = ((605.0, 5.0), (3660.0, 60.0), (29400.0, 600.0), (86400.0, 1800.0))
OBJECT_RETENTION = ((605.0, 5.0), (3660.0, 60.0))
QUEUE_CHARTED = (
    "messages",
    "messages_ready",
    "messages_unacknowledged",
    "publish",
    "deliver_get",
    "ack",
)
EXCHANGE_CHARTED = ("publish_in", "publish_out")


def stats_counters(stats: QueueStats) -> Counters:
    """A queue's counters under their API names."""
    counters: Counters = {name: getattr(stats, attr) for name, attr in QUEUE_COUNTERS.items()}
    for reason in DEAD_LETTER_REASONS:
        counters[f"dead_lettered_{reason}"] = getattr(stats, f"dead_lettered_{reason}")
    return counters


def queue_counters(queue: Queue) -> Counters:
    counters = stats_counters(queue.stats)
    counters["messages_ready"] = len(queue.ready)
    counters["messages_unacknowledged"] = queue.unacked
    counters["messages"] = len(queue.ready) + queue.unacked
    return counters


def exchange_counters(exchange: Exchange) -> Counters:
    return {"publish_in": exchange.stats.publish_in, "publish_out": exchange.stats.publish_out}


def vhost_own_counters(vhost: VirtualHost) -> Counters:
    """Counters the vhost keeps itself, if the core provides them."""
    stats: Any = getattr(vhost, "stats", None)
    if stats is None:
        return {}
    return {name: getattr(stats, name) for name in VHOST_COUNTERS if hasattr(stats, name)}


def add_into(total: Counters, more: Counters) -> None:
    for key, value in more.items():
        total[key] = total.get(key, 0) + value


@dataclass
class Series:
    """Timed samples of one object's counters, trimmed to a time span."""

    span: float
    samples: deque[tuple[float, Counters]] = field(default_factory=deque)

    def add(self, now: float, counters: Counters) -> None:
        self.samples.append((now, counters))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.span:
            self.samples.popleft()

    def rate(self, key: str, window: float) -> float:
        """Growth per second of ``key`` over the last ``window`` seconds of samples."""
        if len(self.samples) < 2:
            return 0.0
        newest_time, newest = self.samples[-1]
        oldest_time, oldest = self.samples[-2]
        for when, counters in reversed(self.samples):
            if newest_time - when > window:
                break
            oldest_time, oldest = when, counters
        elapsed = newest_time - oldest_time
        if elapsed <= 0:
            return 0.0
        return (newest.get(key, 0) - oldest.get(key, 0)) / elapsed

    def history(self, key: str, age: float, now_ms: int, now: float) -> list[dict[str, float]]:
        """RabbitMQ's ``samples`` list: newest first, timestamps in epoch milliseconds."""
        rows = []
        for when, counters in reversed(self.samples):
            if now - when > age:
                break
            rows.append(
                {"timestamp": now_ms - int((now - when) * 1000), "sample": counters.get(key, 0)}
            )
        return rows


class Ring:
    """Samples of a few counters taken at most every ``incr`` seconds for ``age`` seconds,
    in flat arrays (a queue's ten minutes cost a few kilobytes, not a dict per sample)."""

    def __init__(self, keys: Sequence[str], age: float, incr: float) -> None:
        self.keys = tuple(keys)
        self.age = age
        self.incr = incr
        self.size = int(age // incr) + 1
        # Grown sample by sample up to ``size``, then overwritten oldest first.
        self.times = array("d")
        self.values = array("d")
        self.count = 0
        self.head = 0  # where the next sample goes

    def add(self, now: float, counters: Counters) -> None:
        if self.count and now // self.incr == self.times[(self.head - 1) % self.size] // self.incr:
            return  # one sample per increment of the clock, the first taken in it
        row = [counters.get(key, 0) for key in self.keys]
        if self.count < self.size:
            self.times.append(now)
            self.values.extend(row)
        else:
            self.times[self.head] = now
            base = self.head * len(self.keys)
            self.values[base : base + len(row)] = array("d", row)
        self.head = (self.head + 1) % self.size
        self.count = min(self.count + 1, self.size)

    def newest_first(self, key: str, age: float, now: float) -> list[tuple[float, float]]:
        if key not in self.keys:
            return []
        column, width, rows = self.keys.index(key), len(self.keys), []
        for back in range(1, self.count + 1):
            slot = (self.head - back) % self.size
            when = self.times[slot]
            if now - when > age:
                break
            rows.append((when, self.values[slot * width + column]))
        return rows


class SampleHistory:
    """Rings at several resolutions; a question is answered by the finest that covers it."""

    def __init__(self, keys: Sequence[str], retention: Sequence[tuple[float, float]]) -> None:
        self.rings = [Ring(keys, age, incr) for age, incr in retention]

    def add(self, now: float, counters: Counters) -> None:
        for ring in self.rings:
            ring.add(now, counters)

    def samples(
        self, key: str, age: float, incr: float, now: float, recent: Series | None = None
    ) -> list[dict[str, float]]:
        """(loop time, value) newest first, about ``incr`` apart: the ``recent`` series'
        samples (every tick) first, then the finest ring that covers ``age`` before them."""
        rows: list[tuple[float, float]] = []
        if recent is not None:
            for when, counters in reversed(recent.samples):
                if now - when > age:
                    break
                rows.append((when, counters.get(key, 0)))
        ring = next((r for r in self.rings if r.age >= age), self.rings[-1])
        oldest = rows[-1][0] if rows else now + 1
        rows.extend(row for row in ring.newest_first(key, age, now) if row[0] < oldest)
        now_ms = int(time.time() * 1000)
        thinned: list[dict[str, float]] = []
        last = now + 1
        for when, value in rows:
            if not thinned or last - when >= incr * 0.98:
                last = when
                thinned.append({"timestamp": now_ms - int((now - when) * 1000), "sample": value})
        return thinned


class StatsSampler:
    """Samples the node's counters periodically; answers rates and totals."""

    def __init__(self, node: Node, *, window: float = 10.0, history: float = 600.0) -> None:
        self.node = node
        self.window = window
        self.queues_retired = 0
        self.queues: dict[int, tuple[Queue, Series]] = {}
        self.exchanges: dict[int, tuple[Exchange, Series]] = {}
        self.vhosts: dict[str, Series] = {}
        self.overview = Series(history)
        self.overview_history = SampleHistory(
            (*QUEUE_COUNTERS, *VHOST_COUNTERS, *GAUGES), GLOBAL_RETENTION
        )
        self.queue_histories: dict[int, SampleHistory] = {}
        self.exchange_histories: dict[int, SampleHistory] = {}
        self._span = max(window * 2, window + 1)

    def sample(self, now: float) -> None:
        live: set[int] = set()
        self._sample_exchanges(now)
        node_total: Counters = dict.fromkeys(QUEUE_COUNTERS, 0)
        for vhost in list(self.node.vhosts.values()):
            vhost_total: Counters = {}
            for queue in list(vhost.queues.values()):
                live.add(id(queue))
                tracked = self.queues.get(id(queue))
                if tracked is None or tracked[0] is not queue:
                    tracked = self.queues[id(queue)] = (queue, Series(self._span))
                    self.queue_histories.pop(id(queue), None)
                counters = queue_counters(queue)
                tracked[1].add(now, counters)
                self._history(self.queue_histories, queue, QUEUE_CHARTED).add(now, counters)
                add_into(vhost_total, counters)
            add_into(vhost_total, vhost_own_counters(vhost))
            self.vhosts.setdefault(vhost.name, Series(self._span)).add(now, vhost_total)
            add_into(node_total, vhost_total)
        gone = [key for key in self.queues if key not in live]
        for key in gone:  # their counts stay in the node's (NodeStats.deleted_queues)
            del self.queues[key]
            self.queue_histories.pop(key, None)
        self.queues_retired += len(gone)
        for name in [n for n in self.vhosts if n not in self.node.vhosts]:
            del self.vhosts[name]
        add_into(node_total, self.deleted())  # as totals() counts, without a second walk
        self.overview.add(now, node_total)
        self.overview_history.add(now, node_total)

    @staticmethod
    def _history(
        histories: dict[int, SampleHistory], thing: object, keys: Sequence[str]
    ) -> SampleHistory:
        found = histories.get(id(thing))
        if found is None:
            found = histories[id(thing)] = SampleHistory(keys, OBJECT_RETENTION)
        return found

    @property
    def retired(self) -> Counters:
        """The counts of deleted queues, which the core keeps (``NodeStats``)."""
        return stats_counters(self.node.stats.deleted_queues)

    def deleted(self) -> Counters:
        """The counts of deleted queues and of deleted vhosts' own counters."""
        total = self.retired
        gone = self.node.stats.deleted_vhosts
        add_into(total, {name: getattr(gone, name) for name in VHOST_COUNTERS})
        return total

    def totals(self) -> Counters:
        """Node-wide counters now: live queues, deleted queues, and vhost counters."""
        total: Counters = dict.fromkeys(QUEUE_COUNTERS, 0)
        add_into(total, self.deleted())
        for vhost in self.node.vhosts.values():
            add_into(total, vhost_own_counters(vhost))
            for queue in vhost.queues.values():
                add_into(total, queue_counters(queue))
        return total

    def _sample_exchanges(self, now: float) -> None:
        live: dict[int, tuple[Exchange, Series]] = {}
        for vhost in self.node.vhosts.values():
            for exchange in vhost.exchanges.values():
                tracked = self.exchanges.get(id(exchange))
                if tracked is None or tracked[0] is not exchange:
                    tracked = (exchange, Series(self._span))
                    self.exchange_histories.pop(id(exchange), None)
                counters = exchange_counters(exchange)
                tracked[1].add(now, counters)
                self._history(self.exchange_histories, exchange, EXCHANGE_CHARTED).add(
                    now, counters
                )
                live[id(exchange)] = tracked
        self.exchanges = live
        for key in [k for k in self.exchange_histories if k not in live]:
            del self.exchange_histories[key]

    def exchange_series(self, exchange: Exchange) -> Series | None:
        tracked = self.exchanges.get(id(exchange))
        return tracked[1] if tracked is not None and tracked[0] is exchange else None

    def queue_series(self, queue: Queue) -> Series | None:
        tracked = self.queues.get(id(queue))
        return tracked[1] if tracked is not None and tracked[0] is queue else None

    def queue_history(self, queue: Queue) -> SampleHistory | None:
        return self.queue_histories.get(id(queue)) if self.queue_series(queue) else None

    def exchange_history(self, exchange: Exchange) -> SampleHistory | None:
        found = self.exchange_series(exchange) is not None
        return self.exchange_histories.get(id(exchange)) if found else None

    def vhost_series(self, name: str) -> Series | None:
        return self.vhosts.get(name)


def message_stats(
    counters: Counters,
    series: Series | None,
    window: float,
    keys: Iterable[str] = ("publish", "deliver_get", "ack", "redeliver"),
) -> dict[str, Any]:
    """RabbitMQ's ``message_stats``: each counter and its ``_details.rate``."""
    stats: dict[str, Any] = {}
    for key in keys:
        if key not in counters:
            continue
        stats[key] = int(counters[key])
        rate = series.rate(key, window) if series is not None else 0.0
        stats[f"{key}_details"] = {"rate": round(rate, 2)}
    return stats
