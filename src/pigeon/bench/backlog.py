"""Backlog mode: fill one queue with N messages (with confirms), rest, drain it.

It answers "how much memory does a resting backlog cost, and how fast does it
drain": fill rate, drain rate, the broker's RSS once the backlog rests and its
peak RSS over the whole run (sampled every 100 ms), and its CPU seconds.
Each phase ends when it is done, or fails when nothing moved for the
scenario's ``drain`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import uuid
from collections.abc import Callable

from pigeon.bench.client import AmqpClient, BrokerUrl
from pigeon.bench.monitor import Monitor
from pigeon.bench.process import ProcSample
from pigeon.bench.publisher import Publisher
from pigeon.bench.scenario import Result, Scenario
from pigeon.bench.topology import consumer, counters, declare, finish, plan, publisher

DEFAULT_WINDOW = 1000  # confirms in flight while filling, unless --confirm says otherwise
REST_S = 1.0  # between fill and drain, so the broker can page out and settle


async def fill_and_drain(s: Scenario, monitor: Monitor) -> Result:
    url = BrokerUrl.parse(s.url)
    window = s.confirm or DEFAULT_WINDOW
    one = dataclasses.replace(
        s, publishers=1, consumers=1, queues=1, fanout=0, rate=0, confirm=window
    )
    topo = plan(one, f"bench-backlog-{uuid.uuid4().hex[:8]}")
    result = Result(scenario=s)
    control = await AmqpClient.connect(url)
    clients: list[AmqpClient] = []
    monitor.start()
    try:
        await declare(control, topo, s.persistent)
        pub = await publisher(url, one, topo.targets[0], clients)
        await _phases(one, url, topo.queues[0], pub, clients, monitor, result)
    finally:
        await finish(control, topo, clients, monitor, result)
    return result


async def _phases(s: Scenario, url: BrokerUrl, queue: str, pub: Publisher,
                  clients: list[AmqpClient], monitor: Monitor, result: Result) -> None:  # fmt: skip
    loop = asyncio.get_running_loop()
    monitor.counters = counters([pub], [])
    begin, cpu0 = monitor.sample(), _own_cpu()
    started = loop.time()
    monitor.phase = "fill"
    filling = loop.create_task(pub.run(started + 1e7, s.backlog))  # ends by count
    try:
        filled = await _progress_until(
            lambda: (pub.published >= s.backlog and pub.outstanding == 0) or _failed(pub.client),
            lambda: pub.published + pub.tracker.confirmed + pub.tracker.nacked,
            s.drain,
        )
    finally:
        filling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await filling
    fill_s = loop.time() - started
    if not filled:
        result.errors.append(f"fill stalled for {s.drain:g} s")
    monitor.phase = "rest"
    await asyncio.sleep(REST_S)
    full = monitor.sample()
    monitor.phase = "drain-backlog"
    drain_started = loop.time()
    sink = await consumer(url, queue, s, 0, clients)
    sink.scanner.record_until_ns = 0  # waiting time in a backlog is not latency
    monitor.counters = counters([pub], [sink])
    target = pub.tracker.confirmed
    drained = await _progress_until(
        lambda: sink.scanner.delivered >= target or _failed(sink),
        lambda: sink.scanner.delivered,
        s.drain,
    )
    drain_s = loop.time() - drain_started
    if not drained:
        result.errors.append(f"drain stalled for {s.drain:g} s")
    _fill(result, s, pub, sink, fill_s, drain_s, loop.time() - started)
    _fill_broker(result, begin, full, monitor.sample())
    result.loadgen_cpu_s = round(_own_cpu() - cpu0, 3)


async def _progress_until(done: Callable[[], bool], progress: Callable[[], int],
                          stall_s: float) -> bool:  # fmt: skip
    """Poll until ``done()``; ``False`` once ``progress()`` stood still for ``stall_s``."""
    loop = asyncio.get_running_loop()
    last, moved = progress(), loop.time()
    while not done():
        await asyncio.sleep(0.01)
        now = progress()
        if now != last:
            last, moved = now, loop.time()
        elif loop.time() - moved > stall_s:
            return False
    return True


def _failed(client: AmqpClient) -> bool:
    return client.error is not None


def _fill(result: Result, s: Scenario, pub: Publisher, sink: AmqpClient,
          fill_s: float, drain_s: float, total_s: float) -> None:  # fmt: skip
    result.window_s = round(total_s, 3)
    result.published = result.published_total = pub.published
    result.consumed = result.consumed_total = sink.scanner.delivered
    result.confirmed, result.nacked = pub.tracker.confirmed, pub.tracker.nacked
    result.expected_total = pub.published
    result.drained = result.consumed == result.confirmed == pub.published
    result.fill_rate = result.publish_rate = round(pub.published / max(fill_s, 1e-9), 1)
    result.confirm_rate = round(result.confirmed / max(fill_s, 1e-9), 1)
    result.drain_rate = result.consume_rate = round(result.consumed / max(drain_s, 1e-9), 1)
    result.publish_mb_s = round(result.publish_rate * s.size / 1e6, 3)
    result.consume_mb_s = round(result.consume_rate * s.size / 1e6, 3)
    for client in (pub.client, sink):
        if client.error is not None:
            result.errors.append(str(client.error))


def _fill_broker(result: Result, begin: ProcSample | None, full: ProcSample | None,
                 end: ProcSample | None) -> None:  # fmt: skip
    if begin is None or end is None:
        return
    result.broker_cpu_s = round(end.cpu_s - begin.cpu_s, 3)
    result.broker_rss_mb = round(end.rss_bytes / 1e6, 1)
    if full is not None:
        result.rss_full_mb = round(full.rss_bytes / 1e6, 1)


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system
