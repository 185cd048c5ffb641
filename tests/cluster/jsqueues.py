"""Helpers of the stream-queue tests: a front-end (a real core Node whose durable
queues live in JetStream), a consumer with a prefetch limit, and polling."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
from collections.abc import Callable
from typing import Any

from pigeon.cluster.natsserver import LocalCluster
from pigeon.cluster.queues import ClusterQueues, QueueSettings
from pigeon.cluster.stream_queue import StreamQueue
from pigeon.core.consumer import Consumer
from pigeon.core.entry import Entry
from pigeon.core.message import Message, Properties
from pigeon.core.node import Node
from pigeon.core.queue import Queue
from pigeon.core.vhost import VirtualHost

_names = itertools.count(1)


def queue_name(prefix: str = "q") -> str:
    return f"{prefix}.{next(_names)} é*>"  # characters no subject token may hold


async def until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met within the deadline")
        await asyncio.sleep(0.02)


async def stays(condition: object, seconds: float) -> None:
    """``condition`` holds for ``seconds`` (checked all along)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        assert condition(), "condition broke"  # type: ignore[operator]
        await asyncio.sleep(0.05)


def restart(server: LocalCluster) -> None:
    """The same server again: same ports, same store folder."""
    assert server.binary is not None
    folder = server.directory / "nats-1"
    with (folder / "nats-server.log").open("ab") as log:
        server.processes.append(
            subprocess.Popen(
                [str(server.binary), "-c", str(folder / "nats-server.conf")],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        )
    server.wait_ready(30)


class FrontEnd:
    """One Pigeon front-end: a core Node using one connection to JetStream."""

    def __init__(self, cluster: ClusterQueues) -> None:
        self.cluster = cluster
        self.node = Node(asyncio.get_running_loop())
        self.node.queue_factory = cluster
        self.vhost: VirtualHost = self.node.add_vhost("/")

    @classmethod
    async def start(cls, urls: list[str], **settings: Any) -> FrontEnd:
        return cls(await ClusterQueues.connect(urls, QueueSettings(**settings)))

    async def declare(self, name: str, **options: Any) -> StreamQueue:
        """A durable queue; returns once JetStream has its stream and consumer."""
        queue = self.vhost.declare_queue(name, owner=None, durable=True, **options).queue
        assert isinstance(queue, StreamQueue)
        await self.confirmed()
        return queue

    def publish(self, routing_key: str, body: bytes, **properties: Any) -> None:
        message = Message("", routing_key, Properties(durable=True, **properties), body)
        self.vhost.publish(message, self.vhost.exchange(""))

    async def confirmed(self, timeout: float = 10.0) -> None:
        """Until every write so far is acknowledged by JetStream (the confirm barrier)."""
        done = asyncio.get_running_loop().create_future()
        self.cluster.ledger.sync(lambda: done.done() or done.set_result(None))
        await asyncio.wait_for(done, timeout)

    async def stream_info(self, queue: StreamQueue) -> dict[str, Any]:
        return await self.cluster.api(f"$JS.API.STREAM.INFO.{queue.names.stream}", None)

    async def close(self) -> None:
        await self.cluster.close()


class Collector(Consumer):
    """A consumer with a prefetch limit that keeps what it is given."""

    def __init__(self, prefetch: int = 100, no_ack: bool = False) -> None:
        super().__init__(f"collector-{next(_names)}", no_ack=no_ack)
        self.prefetch = prefetch
        self.received: list[Entry] = []
        self.outstanding = 0

    def room(self) -> int:
        return self.prefetch - self.outstanding

    def can_deliver(self) -> bool:
        return self.room() > 0

    def deliver(self, queue: Queue, entry: Entry) -> None:
        self.received.append(entry)
        if not self.no_ack:
            self.outstanding += 1

    def settled(self, count: int = 1) -> None:
        self.outstanding -= count

    @property
    def bodies(self) -> list[bytes]:
        return [entry.message.body for entry in self.received]
