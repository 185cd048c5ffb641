"""Stream queues when things go away: a front-end that stops holding messages (they
come back after ack_wait, not before), and a nats-server that stops (a publish is not
confirmed until JetStream acknowledges it, and is stored once after the retries)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pigeon.cluster.natsserver import LocalCluster
from pigeon.core.options import QueueOptions

from .jsqueues import Collector, FrontEnd, queue_name, restart, stays, until


@pytest.fixture(scope="module")
def server(nats_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("nats"), size=1, binary=nats_binary) as cluster:
        yield cluster


async def test_a_vanished_front_ends_messages_come_back_after_ack_wait(
    server: LocalCluster,
) -> None:
    holder = await FrontEnd.start(server.urls, ack_wait=1.0)
    other = await FrontEnd.start(server.urls, ack_wait=1.0)
    try:
        name = queue_name()
        queue_a = await holder.declare(name)
        queue_b = await other.declare(name)
        holder.publish(name, b"held")
        kept = Collector()
        queue_a.add_consumer(kept)
        await until(lambda: len(kept.received) == 1)
        waiting = Collector()
        queue_b.add_consumer(waiting)
        # Alive, the holder keeps its lease past ack_wait (it says it is working on it).
        await stays(lambda: not waiting.received, 2.5)
        # Gone without a word (a dead node): no nak, no more "working on it".
        await holder.close()
        await until(lambda: len(waiting.received) == 1, timeout=6.0)
        assert waiting.received[0].redelivered
        assert waiting.received[0].message.body == b"held"
        queue_b.ack_many(waiting.received)
    finally:
        await holder.close()
        await other.close()


async def test_a_publish_is_confirmed_only_after_its_pub_ack(server: LocalCluster) -> None:
    front = await FrontEnd.start(server.urls, retry_after=0.5)
    try:
        name = queue_name()
        queue = await front.declare(name)
        ledger = front.cluster.ledger
        server.stop()
        front.publish(name, b"while down")
        assert ledger.durable < ledger.written
        # Retried (every half second) and never acknowledged: never confirmed.
        await stays(lambda: ledger.durable < ledger.written, 2.0)
        restart(server)
        await front.confirmed(timeout=20.0)
        assert ledger.durable == ledger.written
        info = await front.stream_info(queue)
        assert info["state"]["messages"] == 1  # the retries stored it once (Nats-Msg-Id)
        consumer = Collector()
        queue.add_consumer(consumer)
        await until(lambda: consumer.bodies == [b"while down"])
        queue.ack_many(consumer.received)
    finally:
        await front.close()


async def test_a_front_end_that_stops_gives_its_messages_back_at_once(
    server: LocalCluster,
) -> None:
    leaving = await FrontEnd.start(server.urls, ack_wait=60.0)
    staying = await FrontEnd.start(server.urls, ack_wait=60.0)
    try:
        name = queue_name()
        queue_a = await leaving.declare(name)
        queue_b = await staying.declare(name)
        for body in (b"one", b"two", b"three"):
            leaving.publish(name, body)
        held = Collector(prefetch=2)  # two delivered and unacked, maybe one fetched
        queue_a.add_consumer(held)
        await until(lambda: len(held.received) == 2)
        await leaving.close()
        taker = Collector()
        queue_b.add_consumer(taker)
        # Within seconds, not the minute of ack_wait.
        await until(lambda: len(taker.received) == 3, timeout=5.0)
        assert sorted(taker.bodies) == [b"one", b"three", b"two"]
        queue_b.ack_many(taker.received)
    finally:
        await leaving.close()
        await staying.close()


async def test_x_expires_waits_while_another_front_end_consumes(server: LocalCluster) -> None:
    idle = await FrontEnd.start(server.urls)
    busy = await FrontEnd.start(server.urls)
    try:
        name = queue_name()
        options = QueueOptions(expires=1000)
        queue_idle = await idle.declare(name, options=options)
        queue_busy = await busy.declare(name, options=options)
        consumer = Collector()
        queue_busy.add_consumer(consumer)
        # Unused on the idle front-end for far longer than x-expires, but consumed on
        # the other: kept.
        await stays(lambda: name in idle.vhost.queues, 4.0)
        queue_busy.remove_consumer(consumer)
        # Unused everywhere now: gone (on each front-end, and its stream).
        await until(lambda: name not in idle.vhost.queues, timeout=10.0)
        await until(lambda: name not in busy.vhost.queues, timeout=10.0)
        await idle.confirmed()
        answer = await idle.cluster.api(
            f"$JS.API.STREAM.INFO.{queue_idle.names.stream}", None, ok_errors=(10059,)
        )
        assert answer["error"]["err_code"] == 10059
    finally:
        await idle.close()
        await busy.close()
