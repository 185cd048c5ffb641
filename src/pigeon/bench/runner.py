"""AMQP 0-9-1 load generator: publishers and consumers in one asyncio loop.

Run ``python -m bench.loadgen --help``. It speaks the protocol itself (see
``bench.wire``) and never imports ``pigeon``, so it measures any broker the same
way. Every run stops by itself after ``--duration`` plus ``--drain`` seconds and
deletes the queues and exchange it declared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from pigeon.bench import wire
from pigeon.bench.client import CHANNEL, AmqpClient, BrokerClosed, BrokerUrl
from pigeon.bench.publisher import Publisher
from pigeon.bench.stats import LatencySummary, sample_process, summarize_latencies


@dataclass(frozen=True)
class Scenario:
    url: str = "amqp://guest:guest@127.0.0.1:5672/"
    publishers: int = 1
    consumers: int = 1
    queues: int = 1
    size: int = 16
    persistent: bool = False
    confirm: int = 0  # in-flight window; 0 means no publisher confirms
    prefetch: int = 200
    fanout: int = 0  # >0: one fanout exchange to this many queues, one consumer each
    duration: float = 10.0
    warmup: float = 0.0
    rate: float = 0.0  # total msg/s over all publishers; 0 = unlimited
    count: int = 0  # >0: each publisher stops after this many messages
    drain: float = 10.0
    broker_pid: int = 0


@dataclass
class Result:
    scenario: Scenario
    window_s: float = 0.0
    published: int = 0
    consumed: int = 0
    confirmed: int = 0
    nacked: int = 0
    published_total: int = 0
    consumed_total: int = 0
    expected_total: int = 0
    drained: bool = False
    publish_rate: float = 0.0
    consume_rate: float = 0.0
    publish_mb_s: float = 0.0
    consume_mb_s: float = 0.0
    latency: LatencySummary | None = None
    broker_cpu_s: float | None = None
    broker_rss_mb: float | None = None
    loadgen_cpu_s: float = 0.0
    errors: list[str] = field(default_factory=list)


@dataclass
class _Topology:
    queues: list[str]
    exchange: str  # "" when publishing to the default exchange
    targets: list[tuple[str, str]]  # per publisher: (exchange, routing key)
    routes: list[list[str]]  # per publisher: the queues its messages reach
    consumer_queues: list[str]


def plan(s: Scenario, prefix: str) -> _Topology:
    """Which queues exist, where each publisher sends and where each consumer reads."""
    if s.fanout:
        queues = [f"{prefix}-q{i}" for i in range(s.fanout)]
        exchange = f"{prefix}-fanout"
        return _Topology(
            queues, exchange, [(exchange, "")] * s.publishers, [queues] * s.publishers, queues
        )
    queues = [f"{prefix}-q{i}" for i in range(max(1, s.queues))]
    mine = [queues[i % len(queues)] for i in range(s.publishers)]
    consumer_queues = [queues[i % len(queues)] for i in range(s.consumers)]
    return _Topology(queues, "", [("", q) for q in mine], [[q] for q in mine], consumer_queues)


def check_loopback(url: BrokerUrl) -> None:
    # Latency comes from send timestamps compared with this machine's clock, and the
    # project benchmarks on loopback only.
    host = "127.0.0.1" if url.host == "localhost" else url.host
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"refusing non-loopback broker address {url.host!r}")


async def run(s: Scenario) -> Result:
    url = BrokerUrl.parse(s.url)
    check_loopback(url)
    topo = plan(s, f"bench-{uuid.uuid4().hex[:8]}")
    result = Result(scenario=s)
    control = await AmqpClient.connect(url)
    clients: list[AmqpClient] = []
    try:
        await _declare(control, topo, s.persistent)
        consumers = [
            await _consumer(url, q, s.prefetch, i, clients)
            for i, q in enumerate(topo.consumer_queues)
        ]
        publishers = [await _publisher(url, s, target, clients) for target in topo.targets]
        await _measure(s, topo, publishers, consumers, result)
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
        await _teardown(control, topo, result)
    return result


async def _declare(control: AmqpClient, topo: _Topology, durable: bool) -> None:
    for queue in topo.queues:
        await control.call(wire.queue_declare(CHANNEL, queue, durable), wire.QUEUE_DECLARE)
    if topo.exchange:
        frame = wire.exchange_declare(CHANNEL, topo.exchange, "fanout", durable)
        await control.call(frame, wire.EXCHANGE_DECLARE)
        for queue in topo.queues:
            frame = wire.queue_bind(CHANNEL, queue, topo.exchange, "")
            await control.call(frame, wire.QUEUE_BIND)


async def _teardown(control: AmqpClient, topo: _Topology, result: Result) -> None:
    try:
        if topo.exchange:
            await control.call(wire.exchange_delete(CHANNEL, topo.exchange), wire.EXCHANGE_DELETE)
        for queue in topo.queues:
            await control.call(wire.queue_delete(CHANNEL, queue), wire.QUEUE_DELETE)
    except (BrokerClosed, TimeoutError) as exc:
        result.errors.append(f"teardown: {type(exc).__name__}: {exc}")
    finally:
        await control.close()


async def _consumer(
    url: BrokerUrl, queue: str, prefetch: int, index: int, clients: list[AmqpClient]
) -> AmqpClient:
    client = await AmqpClient.connect(url)
    clients.append(client)
    if prefetch:
        await client.call(wire.basic_qos(CHANNEL, prefetch), wire.BASIC_QOS)
    # Ack with multiple=True every half window so the broker never waits on us.
    client.ack_every = max(1, prefetch // 2) if prefetch else 100
    frame = wire.basic_consume(CHANNEL, queue, f"bench-consumer-{index}", no_ack=False)
    await client.call(frame, wire.BASIC_CONSUME)
    return client


async def _publisher(
    url: BrokerUrl, s: Scenario, target: tuple[str, str], clients: list[AmqpClient]
) -> Publisher:
    client = await AmqpClient.connect(url)
    clients.append(client)
    template = wire.MessageTemplate.publish(
        CHANNEL, target[0], target[1], s.size, s.persistent, client.frame_max
    )
    rate = s.rate / s.publishers if s.rate else 0.0
    publisher = Publisher(client, template, window=s.confirm, rate=rate)
    if s.confirm:
        await publisher.enable_confirms()
    return publisher


class _Snapshot:
    def __init__(self, publishers: Sequence[Publisher], consumers: Sequence[AmqpClient], pid: int):
        self.time = asyncio.get_running_loop().time()
        self.published = sum(p.published for p in publishers)
        self.consumed = sum(c.scanner.delivered for c in consumers)
        self.broker = sample_process(pid) if pid else None
        times = os.times()
        self.cpu = times.user + times.system


async def _measure(
    s: Scenario,
    topo: _Topology,
    publishers: list[Publisher],
    consumers: list[AmqpClient],
    result: Result,
) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + s.warmup + s.duration
    record_from = _monotonic_ns_at(loop, start + s.warmup)
    for consumer in consumers:
        consumer.scanner.record_from_ns = record_from
        consumer.scanner.record_until_ns = _monotonic_ns_at(loop, deadline)
    snapshots: list[_Snapshot] = []
    first = loop.call_at(start + s.warmup, lambda: snapshots.append(_snapshot()))

    def _snapshot() -> _Snapshot:
        return _Snapshot(publishers, consumers, s.broker_pid)

    try:
        if publishers:
            await asyncio.gather(*(p.run(deadline, s.count) for p in publishers))
        else:  # consume-only run: just watch for the duration
            await asyncio.sleep(deadline - loop.time())
    finally:
        first.cancel()
    end = _snapshot()
    begin = snapshots[0] if snapshots else _Snapshot([], [], 0)
    if not snapshots:  # finished (count mode) before the warm-up ended
        begin.time, begin.cpu = start, end.cpu
    await _drain(s, topo, publishers, consumers, result)
    _fill(result, s, begin, end, publishers, consumers)


async def _drain(
    s: Scenario,
    topo: _Topology,
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
    result.publish_mb_s = round(result.publish_rate * s.size / 1e6, 3)
    result.consume_mb_s = round(result.consume_rate * s.size / 1e6, 3)
    samples = [x for c in consumers for x in c.scanner.latencies]
    result.latency = summarize_latencies(samples)
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


@dataclass(frozen=True)
class Options:
    json: bool = False
    uvloop: bool = True


def parse_args(argv: Sequence[str] | None = None) -> tuple[Scenario, Options]:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    d = Scenario()
    p.add_argument("--url", default=d.url, help="broker URL (loopback only)")
    p.add_argument("--publishers", type=int, default=d.publishers)
    p.add_argument("--consumers", type=int, default=d.consumers)
    p.add_argument("--queues", type=int, default=d.queues)
    p.add_argument("--size", type=int, default=d.size, help="body bytes (>= 16)")
    p.add_argument("--persistent", action="store_true", help="delivery mode 2, durable queues")
    p.add_argument(
        "--confirm",
        type=int,
        nargs="?",
        const=128,
        default=0,
        metavar="WINDOW",
        help="publisher confirms with at most WINDOW unconfirmed per publisher (default 128)",
    )
    p.add_argument("--prefetch", type=int, default=d.prefetch, help="basic.qos per consumer")
    p.add_argument(
        "--fanout",
        type=int,
        default=0,
        metavar="N",
        help="one fanout exchange to N queues, one consumer each",
    )
    p.add_argument("--duration", type=float, default=d.duration, help="seconds of publishing")
    p.add_argument("--warmup", type=float, default=d.warmup, help="seconds excluded from stats")
    p.add_argument("--rate", type=float, default=0.0, help="total msg/s limit (latency mode)")
    p.add_argument("--count", type=int, default=0, help="stop each publisher after N messages")
    p.add_argument("--drain", type=float, default=d.drain, help="seconds to wait for delivery")
    p.add_argument("--broker-pid", type=int, default=0, help="report this process's CPU/RSS")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop")
    args = p.parse_args(argv)
    if args.size < wire.PREFIX_SIZE:
        p.error(f"--size must be at least {wire.PREFIX_SIZE}")
    if args.fanout:
        args.consumers = args.queues = args.fanout
    fields = {k: v for k, v in vars(args).items() if k not in ("json", "no_uvloop")}
    return Scenario(**fields), Options(json=args.json, uvloop=not args.no_uvloop)


def to_dict(result: Result) -> dict[str, object]:
    return asdict(result)


def render(result: Result) -> str:
    r = result
    lines = [
        f"window {r.window_s:.2f} s  published {r.published} ({r.publish_rate:,.0f} msg/s, "
        f"{r.publish_mb_s:.2f} MB/s)  consumed {r.consumed} ({r.consume_rate:,.0f} msg/s, "
        f"{r.consume_mb_s:.2f} MB/s)",
        f"totals: published {r.published_total}  consumed {r.consumed_total}"
        f"/{r.expected_total}  confirmed {r.confirmed}  nacked {r.nacked}  drained {r.drained}",
    ]
    if r.latency:
        lat = r.latency
        lines.append(
            f"latency us: p50 {lat.p50_us:.0f}  p99 {lat.p99_us:.0f}  p99.9 {lat.p999_us:.0f}"
            f"  max {lat.max_us:.0f}  mean {lat.mean_us:.0f}  (n={lat.count})"
        )
    if r.broker_cpu_s is not None:
        lines.append(f"broker: cpu {r.broker_cpu_s:.2f} s  rss {r.broker_rss_mb:.1f} MB")
    lines.append(f"loadgen cpu {r.loadgen_cpu_s:.2f} s")
    lines += [f"error: {e}" for e in r.errors]
    return "\n".join(lines)


def run_sync(scenario: Scenario, use_uvloop: bool = True) -> Result:
    """Run one scenario in a fresh event loop (uvloop when installed and wanted)."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(run_bounded(scenario))
    return asyncio.run(run_bounded(scenario))


async def run_bounded(scenario: Scenario, slack: float = 60.0) -> Result:
    """``run`` with a hard time limit: setup, measuring, drain and teardown included."""
    limit = scenario.warmup + scenario.duration + scenario.drain + slack
    return await asyncio.wait_for(run(scenario), limit)


def main(argv: Sequence[str] | None = None) -> int:
    scenario, options = parse_args(argv)
    try:
        result = run_sync(scenario, options.uvloop)
    except (OSError, TimeoutError, BrokerClosed) as exc:
        print(f"loadgen: {scenario.url}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(to_dict(result)) if options.json else render(result))
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
