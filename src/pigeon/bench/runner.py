"""One benchmark run: publishers and consumers in one asyncio loop, then the numbers.

It speaks AMQP 0-9-1 itself (see ``pigeon.bench.wire``) and never imports the
broker, so it measures any broker the same way. Every run stops by itself
after its duration (or count) plus the drain time, and deletes the queues and
exchange it declared.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Sequence

from pigeon.bench.backlog import fill_and_drain
from pigeon.bench.client import AmqpClient, BrokerUrl
from pigeon.bench.monitor import Monitor
from pigeon.bench.publisher import Publisher
from pigeon.bench.scenario import Result, Scenario
from pigeon.bench.stats import summarize_latencies
from pigeon.bench.topology import (
    Topology,
    consumer,
    counters,
    declare,
    finish,
    plan,
    publisher,
)


async def run(s: Scenario, monitor: Monitor | None = None) -> Result:
    """Run ``s`` once against ``s.url``; ``monitor`` gets its phases and counters."""
    monitor = monitor or Monitor(s.broker_pid)
    if s.backlog:
        return await fill_and_drain(s, monitor)
    url = BrokerUrl.parse(s.url)
    topo = plan(s, f"bench-{uuid.uuid4().hex[:8]}")
    result = Result(scenario=s)
    control = await AmqpClient.connect(url)
    clients: list[AmqpClient] = []
    monitor.start()
    try:
        await declare(control, topo, s.persistent)
        consumers = [
            await consumer(url, q, s, i, clients) for i, q in enumerate(topo.consumer_queues)
        ]
        publishers = [await publisher(url, s, target, clients) for target in topo.targets]
        monitor.counters = counters(publishers, consumers)
        await _measure(s, topo, publishers, consumers, result, monitor)
    finally:
        await finish(control, topo, clients, monitor, result)
    return result


class _Snapshot:
    def __init__(self, monitor: Monitor, publishers: Sequence[Publisher] = (),
                 consumers: Sequence[AmqpClient] = ()) -> None:  # fmt: skip
        self.time = asyncio.get_running_loop().time()
        self.published = sum(p.published for p in publishers)
        self.consumed = sum(c.scanner.delivered for c in consumers)
        self.confirmed = sum(p.tracker.confirmed for p in publishers)
        self.broker = monitor.sample()
        times = os.times()
        self.cpu = times.user + times.system


async def _measure(
    s: Scenario,
    topo: Topology,
    publishers: list[Publisher],
    consumers: list[AmqpClient],
    result: Result,
    monitor: Monitor,
) -> None:
    """Duration mode: the window is [end of warm-up, deadline]. Count mode (a closed
    run): the window is from the first publish until the drain finished."""
    loop = asyncio.get_running_loop()
    closed = s.count > 0
    warmup = 0.0 if closed else s.warmup
    start = loop.time()
    deadline = start + warmup + s.duration
    if not closed:
        for c in consumers:
            c.scanner.record_from_ns = _monotonic_ns_at(loop, start + warmup)
            c.scanner.record_until_ns = _monotonic_ns_at(loop, deadline)
    snapshots = [_Snapshot(monitor, publishers, consumers)]

    def _begin() -> None:
        monitor.phase = "measure"
        snapshots[0] = _Snapshot(monitor, publishers, consumers)

    monitor.phase = "warmup" if warmup else "measure"
    first = loop.call_at(start + warmup, _begin) if warmup else None
    try:
        if publishers:
            await asyncio.gather(*(p.run(deadline, s.count) for p in publishers))
        else:  # consume-only run: just watch for the duration
            await asyncio.sleep(deadline - loop.time())
    finally:
        if first is not None:
            first.cancel()
    end = None if closed else _Snapshot(monitor, publishers, consumers)
    monitor.phase = "drain"
    await _drain(s, topo, publishers, consumers, result)
    end = end or _Snapshot(monitor, publishers, consumers)
    _fill(result, s, snapshots[0], end, publishers, consumers)


async def _drain(
    s: Scenario,
    topo: Topology,
    publishers: list[Publisher],
    consumers: list[AmqpClient],
    result: Result,
) -> None:
    """Wait (polling against a deadline) until every routed message arrived and
    every publish was confirmed, or the drain timeout passes."""
    queues_read = set(topo.consumer_queues)
    result.expected_total = sum(
        p.published * sum(q in queues_read for q in route)
        for p, route in zip(publishers, topo.routes, strict=True)
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + s.drain
    while loop.time() < deadline:
        delivered = sum(c.scanner.delivered for c in consumers)
        unconfirmed = sum(p.outstanding for p in publishers if p.window)
        if delivered >= result.expected_total and unconfirmed == 0:
            result.drained = True
            return
        if any(c.error is not None for c in [*consumers, *(p.client for p in publishers)]):
            return
        await asyncio.sleep(0.01)


def _fill(
    result: Result,
    s: Scenario,
    begin: _Snapshot,
    end: _Snapshot,
    publishers: list[Publisher],
    consumers: list[AmqpClient],
) -> None:
    window = max(end.time - begin.time, 1e-9)
    result.window_s = round(window, 3)
    result.published = end.published - begin.published
    result.consumed = end.consumed - begin.consumed
    result.published_total = sum(p.published for p in publishers)
    result.consumed_total = sum(c.scanner.delivered for c in consumers)
    result.confirmed = sum(p.tracker.confirmed for p in publishers)
    result.nacked = sum(p.tracker.nacked for p in publishers)
    result.publish_rate = round(result.published / window, 1)
    result.consume_rate = round(result.consumed / window, 1)
    result.confirm_rate = round((end.confirmed - begin.confirmed) / window, 1)
    result.publish_mb_s = round(result.publish_rate * s.size / 1e6, 3)
    result.consume_mb_s = round(result.consume_rate * s.size / 1e6, 3)
    result.latency = summarize_latencies(x for c in consumers for x in c.scanner.latencies)
    result.loadgen_cpu_s = round(end.cpu - begin.cpu, 3)
    if begin.broker is not None and end.broker is not None:
        result.broker_cpu_s = round(end.broker.cpu_s - begin.broker.cpu_s, 3)
        result.broker_rss_mb = round(end.broker.rss_bytes / 1e6, 1)
    for client in [*consumers, *(p.client for p in publishers)]:
        if client.error is not None:
            result.errors.append(str(client.error))


def _monotonic_ns_at(loop: asyncio.AbstractEventLoop, when: float) -> int:
    """The ``time.monotonic_ns()`` reading that corresponds to loop time ``when``."""
    return time.monotonic_ns() + int((when - loop.time()) * 1e9)


def run_sync(scenario: Scenario, monitor: Monitor | None = None, use_uvloop: bool = True) -> Result:
    """Run one scenario in a fresh event loop (uvloop when installed and wanted)."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(run_bounded(scenario, monitor))
    return asyncio.run(run_bounded(scenario, monitor))


async def run_bounded(scenario: Scenario, monitor: Monitor | None = None,
                      slack: float = 60.0) -> Result:  # fmt: skip
    """``run`` with a hard time limit: setup, measuring, drain and teardown included."""
    limit: float | None = scenario.warmup + scenario.duration + scenario.drain + slack
    if scenario.backlog:
        limit = None  # its phases end when progress stalls for ``drain`` seconds
    return await asyncio.wait_for(run(scenario, monitor), limit)
