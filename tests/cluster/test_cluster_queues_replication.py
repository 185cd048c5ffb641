"""Stream queues on a three-server JetStream cluster: R3 streams, and two front-ends
on different servers sharing one queue."""

from __future__ import annotations

from pigeon.cluster.natsserver import LocalCluster

from .jsqueues import Collector, FrontEnd, queue_name, until


async def test_three_servers_give_r3_streams_shared_by_front_ends_on_any_server(
    nats_cluster: LocalCluster,
) -> None:
    first = await FrontEnd.start(nats_cluster.urls[:1])
    second = await FrontEnd.start(nats_cluster.urls[2:])
    try:
        name = queue_name()
        queue_a = await first.declare(name)
        info = await first.stream_info(queue_a)
        assert info["config"]["num_replicas"] == 3
        assert len(info["cluster"]["replicas"]) == 2  # a leader and two followers
        assert queue_a.placement is not None
        leader, members = queue_a.placement
        assert members == ["n1", "n2", "n3"] and leader in members
        queue_b = await second.declare(name)
        for index in range(4):
            first.publish(name, b"%d" % index)
        await first.confirmed()  # PubAck: stored by a majority of the three
        consumer = Collector()
        queue_b.add_consumer(consumer)
        await until(lambda: len(consumer.received) == 4)
        assert consumer.bodies == [b"0", b"1", b"2", b"3"]
        queue_b.ack_many(consumer.received)
    finally:
        await first.close()
        await second.close()
