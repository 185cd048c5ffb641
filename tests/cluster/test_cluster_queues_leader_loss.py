"""The stream leader of a queue is killed (SIGKILL) while publishes are in flight:
every publish is confirmed once a new leader takes over (retried with the same
Nats-Msg-Id), each is stored exactly once, and all are consumed. A three-server
cluster of its own: the test kills one of them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from pigeon.cluster.natsserver import LocalCluster

from .jsqueues import Collector, FrontEnd, queue_name, until

COUNT = 400


@pytest.fixture(scope="module")
def servers(nats_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("nats"), size=3, binary=nats_binary) as cluster:
        yield cluster


@pytest.fixture
async def front(servers: LocalCluster) -> AsyncIterator[FrontEnd]:
    front = await FrontEnd.start(servers.urls, retry_after=0.5)
    yield front
    await front.close()


async def test_publishes_survive_the_loss_of_the_stream_leader(
    servers: LocalCluster, front: FrontEnd
) -> None:
    name = queue_name()
    queue = await front.declare(name)
    info = await front.stream_info(queue)
    assert info["config"]["num_replicas"] == 3
    leader = info["cluster"]["leader"]  # "n1".."n3": LocalCluster's server names
    ledger = front.cluster.ledger
    start = ledger.written
    for index in range(COUNT):
        front.publish(name, b"%d" % index)
    # Mid-flight: some acknowledged, not all.
    await until(lambda: ledger.durable > start + 20)
    servers.processes[int(leader[1:]) - 1].kill()
    await front.confirmed(timeout=60.0)

    async def stored() -> int:
        return int((await front.stream_info(queue))["state"]["messages"])

    deadline = asyncio.get_running_loop().time() + 30
    while (count := await _answer(stored)) != COUNT:
        assert asyncio.get_running_loop().time() < deadline, f"{count} stored"
        await asyncio.sleep(0.1)
    consumer = Collector(prefetch=500)
    queue.add_consumer(consumer)
    await until(lambda: len(consumer.received) >= COUNT, timeout=30.0)
    assert sorted(consumer.bodies, key=int) == [b"%d" % i for i in range(COUNT)]
    queue.ack_many(consumer.received)


async def _answer(stored: object) -> int:
    try:
        return await stored()  # type: ignore[operator,no-any-return]
    except Exception:  # no stream leader yet
        return -1
