"""A Pigeon node whose nats-server stops answering (SIGSTOP: the process holds its
sockets, as a partitioned or hung machine does) moves to another server within
seconds: a publish made meanwhile is confirmed, not left waiting for minutes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest

from pigeon.cluster.natsserver import LocalCluster

from .failover_rig import NatsServers, PigeonNode

# The stream may need a new leader too (the stopped server led it): JetStream's
# election takes seconds; nats-py's default stale detection took minutes.
CONFIRM_WITHIN = 30.0


@pytest.fixture
def servers(nats_binary: Path, tmp_path: Path) -> Iterator[NatsServers]:
    cluster = LocalCluster(tmp_path / "nats", size=3, binary=nats_binary)
    servers = NatsServers(cluster)
    cluster.start()
    try:
        yield servers
    finally:
        for index in list(servers.stopped):
            servers.resume(index)
        cluster.stop()


@pytest.fixture
def node(servers: NatsServers, tmp_path: Path) -> Iterator[PigeonNode]:
    node = PigeonNode("a", tmp_path / "a", servers.cluster)
    node.start()
    try:
        yield node
    finally:
        node.kill()


@pytest.mark.timeout(90)
async def test_a_node_leaves_a_server_that_stopped_answering(
    servers: NatsServers, node: PigeonNode
) -> None:
    connection = await aio_pika.connect(node.url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue("partitioned", durable=True)
        message = aio_pika.Message(b"before", delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await channel.default_exchange.publish(message, "partitioned")
        [index] = await asyncio.to_thread(servers.serving, "pigeon")
        servers.pause(index)
        start = time.monotonic()
        message = aio_pika.Message(b"during", delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await asyncio.wait_for(
            channel.default_exchange.publish(message, "partitioned"), CONFIRM_WITHIN
        )
        print(f"confirmed {time.monotonic() - start:.2f} s after the SIGSTOP")
        servers.resume(index)
        queue = await channel.declare_queue("partitioned", durable=True)
        bodies = []
        async with queue.iterator() as messages:
            async for delivered in messages:
                bodies.append(delivered.body)
                await delivered.ack()
                if len(bodies) == 2:
                    break
        assert bodies == [b"before", b"during"]
    assert not node.errors()
