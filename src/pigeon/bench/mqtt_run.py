"""One MQTT benchmark run: publishers and subscribers in one asyncio loop, then the numbers.

Publisher i sends to ``bench/RUN/i mod topics``, subscriber j subscribes to
``bench/RUN/j mod topics`` (clean sessions, so the broker keeps nothing after the
run). The windows, drain and numbers follow the AMQP runner (``pigeon.bench.runner``).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Sequence

from pigeon.bench import mqtt_wire as mw
from pigeon.bench.monitor import Monitor
from pigeon.bench.mqtt_client import MqttClient, MqttUrl
from pigeon.bench.mqtt_idle import measure_idle
from pigeon.bench.mqtt_scenario import MqttResult, MqttScenario
from pigeon.bench.pacing import PacedPublisher
from pigeon.bench.stats import summarize_latencies


class MqttPublisher(PacedPublisher):
    """Publishes through one connection until a deadline or a count; with QoS 1 at
    most ``window`` publishes wait for their PUBACK."""

    def __init__(self, client: MqttClient, template: mw.PublishTemplate, window: int,
                 rate: float) -> None:  # fmt: skip
        super().__init__(client, template, window, rate)
        self.client: MqttClient = client
        client.on_puback = self._wakeup if window else _nothing

    @property
    def outstanding(self) -> int:
        return self.published - self.client.acked if self.window else 0


def _nothing() -> None:
    pass


async def run_mqtt(s: MqttScenario, monitor: Monitor | None = None) -> MqttResult:
    """Run ``s`` once against ``s.url``; ``monitor`` gets its phases and counters."""
    monitor = monitor or Monitor(s.broker_pid)
    if s.idle:
        return await measure_idle(s, monitor)
    url = MqttUrl.parse(s.url)
    run_id = uuid.uuid4().hex[:8]
    topics = [f"bench/{run_id}/{i}" for i in range(s.topics)]
    result = MqttResult(scenario=s)
    clients: list[MqttClient] = []
    monitor.start()
    try:
        subscribers = []
        for j in range(s.consumers):
            client = await _connect(url, s, f"bench-{run_id}-s{j}", clients)
            await client.subscribe(topics[j % s.topics], s.qos)
            subscribers.append(client)
        publishers = []
        for i in range(s.publishers):
            client = await _connect(url, s, f"bench-{run_id}-p{i}", clients)
            template = mw.PublishTemplate(topics[i % s.topics], s.qos, s.size, s.version)
            publishers.append(MqttPublisher(client, template, s.window, s.rate / s.publishers))
        monitor.counters = lambda: (
            sum(p.published for p in publishers),
            sum(c.reader.delivered for c in subscribers),
            sum(p.outstanding for p in publishers),
        )
        readers = [sum(j % s.topics == i % s.topics for j in range(s.consumers))
                   for i in range(s.publishers)]  # fmt: skip
        await _measure(s, publishers, subscribers, readers, result, monitor)
    finally:
        for client in clients:
            client.close()
        await monitor.stop()
        if monitor.peak_rss_bytes:
            result.broker_peak_rss_mb = round(monitor.peak_rss_bytes / 1e6, 1)
    return result


async def _connect(url: MqttUrl, s: MqttScenario, client_id: str,
                   clients: list[MqttClient]) -> MqttClient:  # fmt: skip
    client = await MqttClient.connect(url, client_id, version=s.version, keepalive=s.keepalive)
    clients.append(client)
    return client


class _Snapshot:
    def __init__(self, monitor: Monitor, publishers: Sequence[MqttPublisher],
                 subscribers: Sequence[MqttClient]) -> None:  # fmt: skip
        self.time = asyncio.get_running_loop().time()
        self.published = sum(p.published for p in publishers)
        self.consumed = sum(c.reader.delivered for c in subscribers)
        self.confirmed = sum(p.client.acked for p in publishers)
        self.broker = monitor.sample()
        times = os.times()
        self.cpu = times.user + times.system


async def _measure(
    s: MqttScenario,
    publishers: list[MqttPublisher],
    subscribers: list[MqttClient],
    readers: list[int],
    result: MqttResult,
    monitor: Monitor,
) -> None:
    """Duration mode: the window is [end of warm-up, deadline]; count mode: from the
    first publish until the drain finished."""
    loop = asyncio.get_running_loop()
    closed = s.count > 0
    warmup = 0.0 if closed else s.warmup
    start = loop.time()
    deadline = start + warmup + s.duration
    if not closed:
        for c in subscribers:
            c.reader.record_from_ns = _monotonic_ns_at(loop, start + warmup)
            c.reader.record_until_ns = _monotonic_ns_at(loop, deadline)
    snapshots = [_Snapshot(monitor, publishers, subscribers)]

    def _begin() -> None:
        monitor.phase = "measure"
        snapshots[0] = _Snapshot(monitor, publishers, subscribers)

    monitor.phase = "warmup" if warmup else "measure"
    first = loop.call_at(start + warmup, _begin) if warmup else None
    try:
        if publishers:
            await asyncio.gather(*(p.run(deadline, s.count) for p in publishers))
        else:
            await asyncio.sleep(deadline - loop.time())
    finally:
        if first is not None:
            first.cancel()
    end = None if closed else _Snapshot(monitor, publishers, subscribers)
    monitor.phase = "drain"
    result.expected_total = sum(p.published * n for p, n in zip(publishers, readers, strict=True))
    result.drained = await _drain(s, publishers, subscribers, result.expected_total)
    end = end or _Snapshot(monitor, publishers, subscribers)
    _fill(result, s, snapshots[0], end, publishers, subscribers)


async def _drain(s: MqttScenario, publishers: list[MqttPublisher],
                 subscribers: list[MqttClient], expected: int) -> bool:  # fmt: skip
    """Poll until every message arrived and every QoS 1 publish was acknowledged."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + s.drain
    everyone = [*subscribers, *(p.client for p in publishers)]
    while loop.time() < deadline:
        delivered = sum(c.reader.delivered for c in subscribers)
        if delivered >= expected and not any(p.outstanding for p in publishers):
            return True
        if any(c.error is not None for c in everyone):
            return False
        await asyncio.sleep(0.01)
    return False


def _fill(result: MqttResult, s: MqttScenario, begin: _Snapshot, end: _Snapshot,
          publishers: list[MqttPublisher], subscribers: list[MqttClient]) -> None:  # fmt: skip
    window = max(end.time - begin.time, 1e-9)
    result.window_s = round(window, 3)
    result.published = end.published - begin.published
    result.consumed = end.consumed - begin.consumed
    result.published_total = sum(p.published for p in publishers)
    result.consumed_total = sum(c.reader.delivered for c in subscribers)
    result.confirmed = sum(p.client.acked for p in publishers)
    result.publish_rate = round(result.published / window, 1)
    result.consume_rate = round(result.consumed / window, 1)
    if s.qos:
        result.confirm_rate = round((end.confirmed - begin.confirmed) / window, 1)
    result.publish_mb_s = round(result.publish_rate * s.size / 1e6, 3)
    result.consume_mb_s = round(result.consume_rate * s.size / 1e6, 3)
    result.latency = summarize_latencies(x for c in subscribers for x in c.reader.latencies)
    result.loadgen_cpu_s = round(end.cpu - begin.cpu, 3)
    if begin.broker is not None and end.broker is not None:
        result.broker_cpu_s = round(end.broker.cpu_s - begin.broker.cpu_s, 3)
        result.broker_rss_mb = round(end.broker.rss_bytes / 1e6, 1)
    for client in [*subscribers, *(p.client for p in publishers)]:
        if client.error is not None:
            result.errors.append(f"{type(client.error).__name__}: {client.error}")
    missing = max(result.expected_total - result.consumed_total, 0)
    if not s.qos:
        # A broker may drop QoS 0 messages for a subscriber that cannot keep up
        # (MQTT 3.1.1 §4.3.1: at most once): counted, not an error of the run.
        result.lost = missing if not result.errors else None
    elif not result.drained and not result.errors:
        result.errors.append(
            f"drain: {result.consumed_total:,} of {result.expected_total:,} messages arrived "
            f"and {sum(p.outstanding for p in publishers):,} PUBACKs were missing "
            f"after {s.drain:g} s"
        )


def _monotonic_ns_at(loop: asyncio.AbstractEventLoop, when: float) -> int:
    return time.monotonic_ns() + int((when - loop.time()) * 1e9)


async def run_mqtt_bounded(s: MqttScenario, monitor: Monitor | None = None,
                           slack: float = 120.0) -> MqttResult:  # fmt: skip
    """``run_mqtt`` with a hard time limit: setup, measuring, drain and teardown included."""
    return await asyncio.wait_for(run_mqtt(s, monitor), s.warmup + s.duration + s.drain + slack)


def run_mqtt_sync(s: MqttScenario, monitor: Monitor | None = None,
                  use_uvloop: bool = True) -> MqttResult:  # fmt: skip
    """Run one scenario in a fresh event loop (uvloop when installed and wanted)."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(run_mqtt_bounded(s, monitor))
    return asyncio.run(run_mqtt_bounded(s, monitor))
