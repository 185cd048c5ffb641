"""Chart history: rings at several resolutions, answered newest first (manual clock)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

from pigeon.admin.rates import (
    GLOBAL_RETENTION,
    OBJECT_RETENTION,
    QUEUE_CHARTED,
    Ring,
    SampleHistory,
    Series,
)
from pigeon.admin.store_probe import StoreProbe


def test_a_ring_keeps_one_sample_per_increment_and_forgets_the_oldest() -> None:
    ring = Ring(("n",), age=20, incr=5)
    for second in range(0, 60):
        ring.add(float(second), {"n": second})
    rows = ring.newest_first("n", age=1000, now=59.0)
    assert [value for _, value in rows] == [55, 50, 45, 40, 35]  # 20 s at 5 s: five slots
    assert ring.newest_first("missing", 1000, 59.0) == []
    assert [v for _, v in ring.newest_first("n", age=10, now=59.0)] == [55, 50]


def test_a_day_is_answered_from_the_coarse_ring_and_a_minute_from_the_series() -> None:
    history = SampleHistory(("n",), GLOBAL_RETENTION)
    recent = Series(span=30)
    now = 0.0
    while now <= 2 * 86400:
        history.add(now, {"n": now})
        if now > 2 * 86400 - 60:
            recent.add(now, {"n": now})
        now += 5.0
    now -= 5.0
    day = history.samples("n", 86400, 1800, now)
    assert 40 <= len(day) <= 49
    spacing = {round(a["timestamp"] - b["timestamp"]) for a, b in itertools.pairwise(day)}
    assert spacing == {1_800_000}
    minute = history.samples("n", 60, 5, now, recent)
    values = [row["sample"] for row in minute]
    assert values[0] == now and values == sorted(values, reverse=True)
    assert 11 <= len(values) <= 13


def test_a_queue_keeps_an_hour_at_a_minute_and_ten_minutes_at_5_s() -> None:
    history = SampleHistory(QUEUE_CHARTED, OBJECT_RETENTION)  # as RabbitMQ's ``basic``
    now = 0.0
    while now <= 2 * 3600:  # two hours of 5 s ticks on a manual clock
        history.add(now, {"publish": now})
        now += 5.0
    now -= 5.0
    hour = history.samples("publish", 3600, 60, now)
    assert 59 <= len(hour) <= 61
    assert hour[0]["sample"] - hour[-1]["sample"] >= 3540  # it spans the hour
    spacing = {round(a["timestamp"] - b["timestamp"]) for a, b in itertools.pairwise(hour)}
    assert spacing == {60_000}
    ten = history.samples("publish", 600, 5, now)
    assert 119 <= len(ten) <= 121 and ten[0]["sample"] == now
    day = history.samples("publish", 86400, 1800, now)
    assert day[0]["sample"] - day[-1]["sample"] <= 3660  # bounded: no more than the hour


class FakeStore:
    """Writes queued and made durable when the test says so (the store's barrier)."""

    def __init__(self) -> None:
        self.written = 0
        self.durable = 0
        self.waiting: list[Callable[[], object]] = []

    def sync(self, callback: Callable[[], object]) -> None:
        self.waiting.append(callback)

    def flush(self) -> None:
        self.durable = self.written
        for callback in self.waiting:
            callback()
        self.waiting.clear()


def test_the_store_probe_times_commits_only_while_writing() -> None:
    async def run() -> dict[str, float | int]:
        store = FakeStore()
        probe = StoreProbe(store)  # type: ignore[arg-type]
        probe.tick()
        assert store.waiting == []  # nothing pending: nothing asked
        store.written = 3
        probe.tick()
        probe.tick()  # one probe at a time
        assert len(store.waiting) == 1
        await asyncio.sleep(0.02)
        store.flush()
        return probe.summary()

    summary = asyncio.run(run())
    assert summary["io_sync_count"] == 1
    assert summary["io_sync_avg_time"] >= 15 and summary["io_sync_max_time"] >= 15
