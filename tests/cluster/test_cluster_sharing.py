"""The bucket's compare-and-set: a node that loses a create race is told, and takes
the winner's definition; a tombstone is overwritten; a redeclare is no conflict."""

from __future__ import annotations

import asyncio
import uuid

import nats
import pytest

from pigeon.cluster.definitions import BUCKET, encode_value, key_of
from pigeon.cluster.link import ClusterLink
from pigeon.cluster.natsserver import LocalCluster
from pigeon.cluster.sharing import Sharing
from pigeon.core.commands import Command, DeclareQueue, DeleteQueue, QueueRecord


def _queue(name: str, max_length: int) -> DeclareQueue:
    return DeclareQueue(QueueRecord("/", name, True, False, {"x-max-length": max_length}))


async def _run(
    cluster: LocalCluster, before: list[Command], mine: Command
) -> tuple[list[tuple[Command, Command]], list[Command], bytes]:
    """``before`` written by another node, then ``mine`` shared by this one."""
    other = await nats.connect(cluster.urls[1])
    kv = await other.jetstream().create_key_value(bucket=BUCKET, history=1, replicas=3)
    for command in before:
        await kv.put(key_of(command), encode_value(command, "other-node"))
    link = ClusterLink(cluster.urls[:1])
    await link.connect()
    conflicts: list[tuple[Command, Command]] = []
    remote: list[Command] = []
    sharing = Sharing(link, remote.append, lambda m, t: conflicts.append((m, t)))
    try:
        await sharing.open(replicas=3)
        sharing.share(mine)
        done = asyncio.Event()
        sharing.when_acknowledged(sharing.queued, done.set)
        await asyncio.wait_for(done.wait(), 10)
        stored = (await kv.get(key_of(mine))).value or b""
    finally:
        await sharing.close()
        await link.close()
        await other.close()
    return conflicts, remote, stored


async def test_losing_a_create_race_reports_the_winner(nats_cluster: LocalCluster) -> None:
    name = uuid.uuid4().hex
    theirs, mine = _queue(name, 10), _queue(name, 20)
    conflicts, remote, stored = await _run(nats_cluster, [theirs], mine)
    assert conflicts == [(mine, theirs)]
    assert theirs in remote  # the watch brought the winner's definition too
    assert b"other-node" in stored  # the bucket kept the first create


async def test_a_redeclare_is_no_conflict(nats_cluster: LocalCluster) -> None:
    name = uuid.uuid4().hex
    conflicts, _, stored = await _run(nats_cluster, [_queue(name, 10)], _queue(name, 10))
    assert conflicts == []
    assert b"other-node" in stored


async def test_a_deleted_queue_can_be_declared_again(nats_cluster: LocalCluster) -> None:
    name = uuid.uuid4().hex
    before: list[Command] = [_queue(name, 10), DeleteQueue("/", name)]
    conflicts, _, stored = await _run(nats_cluster, before, _queue(name, 20))
    assert conflicts == []
    assert b"other-node" not in stored and b"20" in stored


@pytest.mark.parametrize("name", ["a.b", "*", ">", "with space", "é"])
async def test_any_queue_name_is_a_valid_key(nats_cluster: LocalCluster, name: str) -> None:
    conflicts, _, stored = await _run(nats_cluster, [], _queue(name + uuid.uuid4().hex, 1))
    assert conflicts == [] and stored
