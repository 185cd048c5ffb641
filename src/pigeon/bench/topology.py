"""The queues and exchange a run declares, and the connections that use them."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from pigeon.bench import wire
from pigeon.bench.client import CHANNEL, AmqpClient, BrokerClosed, BrokerUrl
from pigeon.bench.monitor import Counters, Monitor
from pigeon.bench.publisher import Publisher
from pigeon.bench.scenario import Result, Scenario


@dataclass
class Topology:
    queues: list[str]
    exchange: str  # "" when publishing to the default exchange
    targets: list[tuple[str, str]]  # per publisher: (exchange, routing key)
    routes: list[list[str]]  # per publisher: the queues its messages reach
    consumer_queues: list[str]


def plan(s: Scenario, prefix: str) -> Topology:
    """Which queues exist, where each publisher sends and where each consumer reads."""
    if s.fanout:
        queues = [f"{prefix}-q{i}" for i in range(s.fanout)]
        exchange = f"{prefix}-fanout"
        return Topology(
            queues, exchange, [(exchange, "")] * s.publishers, [queues] * s.publishers, queues
        )
    queues = [f"{prefix}-q{i}" for i in range(max(1, s.queues))]
    mine = [queues[i % len(queues)] for i in range(s.publishers)]
    consumer_queues = [queues[i % len(queues)] for i in range(s.consumers)]
    return Topology(queues, "", [("", q) for q in mine], [[q] for q in mine], consumer_queues)


async def declare(control: AmqpClient, topo: Topology, durable: bool) -> None:
    for queue in topo.queues:
        await control.call(wire.queue_declare(CHANNEL, queue, durable), wire.QUEUE_DECLARE)
    if topo.exchange:
        frame = wire.exchange_declare(CHANNEL, topo.exchange, "fanout", durable)
        await control.call(frame, wire.EXCHANGE_DECLARE)
        for queue in topo.queues:
            frame = wire.queue_bind(CHANNEL, queue, topo.exchange, "")
            await control.call(frame, wire.QUEUE_BIND)


async def finish(
    control: AmqpClient,
    topo: Topology,
    clients: Sequence[AmqpClient],
    monitor: Monitor,
    result: Result,
) -> None:
    """End a run: close its connections, delete what it declared, stop sampling the
    broker and keep the peak RSS it saw."""
    for client in clients:
        with contextlib.suppress(Exception):
            await client.close()
    await teardown(control, topo, result.errors)
    await monitor.stop()
    if monitor.peak_rss_bytes:
        result.broker_peak_rss_mb = round(monitor.peak_rss_bytes / 1e6, 1)


async def teardown(control: AmqpClient, topo: Topology, errors: list[str]) -> None:
    """Delete what ``declare`` made and close the control connection."""
    try:
        if topo.exchange:
            await control.call(wire.exchange_delete(CHANNEL, topo.exchange), wire.EXCHANGE_DELETE)
        for queue in topo.queues:
            await control.call(wire.queue_delete(CHANNEL, queue), wire.QUEUE_DELETE)
    except (BrokerClosed, TimeoutError) as exc:
        errors.append(f"teardown: {type(exc).__name__}: {exc}")
    finally:
        await control.close()


async def consumer(
    url: BrokerUrl, queue: str, s: Scenario, index: int, clients: list[AmqpClient]
) -> AmqpClient:
    client = await AmqpClient.connect(url)
    clients.append(client)
    if s.prefetch:
        await client.call(wire.basic_qos(CHANNEL, s.prefetch), wire.BASIC_QOS)
    if not s.auto_ack:
        # Ack with multiple=True every half window so the broker never waits on us.
        client.ack_every = max(1, s.prefetch // 2) if s.prefetch else 100
    frame = wire.basic_consume(CHANNEL, queue, f"bench-consumer-{index}", no_ack=s.auto_ack)
    await client.call(frame, wire.BASIC_CONSUME)
    return client


async def publisher(
    url: BrokerUrl, s: Scenario, target: tuple[str, str], clients: list[AmqpClient]
) -> Publisher:
    client = await AmqpClient.connect(url)
    clients.append(client)
    template = wire.MessageTemplate.publish(
        CHANNEL, target[0], target[1], s.size, s.persistent, client.frame_max
    )
    rate = s.rate / s.publishers if s.rate else 0.0
    made = Publisher(client, template, window=s.confirm, rate=rate)
    if s.confirm:
        await made.enable_confirms()
    return made


def counters(publishers: Sequence[Publisher], consumers: Sequence[AmqpClient]) -> Counters:
    def read() -> tuple[int, int, int]:
        return (
            sum(p.published for p in publishers),
            sum(c.scanner.delivered for c in consumers),
            sum(p.outstanding for p in publishers if p.window),
        )

    return read
