"""The clients of the failover tests (aio-pika), which write what they see into a
:class:`~tests.cluster.jepsen.History`.

A :class:`Publisher` publishes persistent messages to one queue with publisher
confirms, up to ``window`` unconfirmed at a time and ``rate`` a second; each body is
a unique id. A :class:`Consumer` consumes one queue with manual acks and a prefetch
limit, and acks what it recorded in batches. Both start on their home node and, when
their connection goes away (the node died), connect to the next node that accepts
them and carry on: what a client of a cluster does.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import aio_pika
import aio_pika.abc
import aio_pika.exceptions
import aiormq.exceptions

from .failover_rig import PigeonNode
from .jepsen import CONFIRMED, NACKED, UNKNOWN, Delivery, History, Publish

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3.0
# What a connection (or channel) that goes away raises in aio-pika and aiormq.
GONE = (
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
    aiormq.exceptions.AMQPError,
    aio_pika.exceptions.AMQPException,
    RuntimeError,  # "writer is None" and the like, on a transport closed under it
)


async def connect(
    nodes: Sequence[PigeonNode], start: int, stop: asyncio.Event
) -> tuple[aio_pika.abc.AbstractConnection, PigeonNode] | None:
    """The first node from ``start`` on (in turn, again and again) that accepts a
    connection; None once ``stop`` is set."""
    for index in itertools.count(start):
        if stop.is_set():
            return None
        node = nodes[index % len(nodes)]
        if node.running and node.port:
            try:
                connection = await aio_pika.connect(node.url, timeout=CONNECT_TIMEOUT)
            except GONE:
                pass
            else:
                return connection, node
        if index % len(nodes) == len(nodes) - 1:
            await asyncio.sleep(0.1)  # every node refused: a breath before the next round
    return None


class Client:
    def __init__(
        self, name: str, queue: str, home: int, nodes: Sequence[PigeonNode], history: History
    ) -> None:
        self.name = name
        self.queue = queue
        self.home = home
        self.nodes = nodes
        self.history = history
        self.node: PigeonNode | None = None  # connected to, now

    async def run(self, stop: asyncio.Event) -> None:
        start = self.home
        while not stop.is_set():
            found = await connect(self.nodes, start, stop)
            if found is None:
                return
            connection, self.node = found
            self.history.connections.append((self.name, self.node.name, time.monotonic()))
            try:
                await self.session(connection, self.node, stop)
            except GONE as error:
                log.info("%s: %s lost (%r)", self.name, self.node.name, error)
            finally:
                with contextlib.suppress(*GONE):
                    await asyncio.wait_for(connection.close(), 5)
            start = self.nodes.index(self.node) + 1  # the next node first
            self.node = None

    async def session(
        self, connection: aio_pika.abc.AbstractConnection, node: PigeonNode, stop: asyncio.Event
    ) -> None:
        raise NotImplementedError


class Publisher(Client):
    def __init__(self, *args: object, window: int = 16, rate: float = 50.0) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.window = window
        self.interval = 1.0 / rate
        self.ids = itertools.count(1)
        self.in_flight: set[asyncio.Task[None]] = set()

    async def session(
        self, connection: aio_pika.abc.AbstractConnection, node: PigeonNode, stop: asyncio.Event
    ) -> None:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        room = asyncio.Semaphore(self.window)
        closed = asyncio.ensure_future(_lost(connection))
        try:
            while not stop.is_set() and not closed.done():
                await room.acquire()
                if closed.done():
                    room.release()
                    break
                id = f"{self.name}-{next(self.ids)}"
                self.history.sent(Publish(id, self.queue, self.name, node.name, time.monotonic()))
                task = asyncio.create_task(self._publish(channel, id, room))
                self.in_flight.add(task)
                task.add_done_callback(self.in_flight.discard)
                await asyncio.sleep(self.interval)
            # Stopping: the publishes in flight end (confirmed, or their connection gone).
            if self.in_flight:
                await asyncio.wait(
                    set(self.in_flight) | {closed},
                    timeout=30,
                    return_when=asyncio.ALL_COMPLETED if stop.is_set() else asyncio.FIRST_COMPLETED,
                )
        finally:
            closed.cancel()

    async def _publish(
        self, channel: aio_pika.abc.AbstractChannel, id: str, room: asyncio.Semaphore
    ) -> None:
        message = aio_pika.Message(
            id.encode(), message_id=id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        try:
            await channel.default_exchange.publish(message, self.queue, mandatory=True)
        except (aio_pika.exceptions.DeliveryError, aio_pika.exceptions.PublishError):
            self.history.settle(id, NACKED, time.monotonic())  # nacked, or returned
        except GONE:
            self.history.settle(id, UNKNOWN, time.monotonic())
        except asyncio.CancelledError:
            self.history.settle(id, UNKNOWN, time.monotonic())
            raise
        else:
            self.history.settle(id, CONFIRMED, time.monotonic())
        finally:
            room.release()


class Consumer(Client):
    """Acks in batches (``multiple``): every ``ack_every`` deliveries, and what is left
    every ``ack_after`` seconds; so that a node that dies holds unacked messages."""

    def __init__(
        self, *args: object, prefetch: int = 30, ack_every: int = 10, ack_after: float = 0.25
    ) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.prefetch = prefetch
        self.ack_every = ack_every
        self.ack_after = ack_after
        self.unacked: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def session(
        self, connection: aio_pika.abc.AbstractConnection, node: PigeonNode, stop: asyncio.Event
    ) -> None:
        self.unacked = []
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=self.prefetch)
        queue = await channel.declare_queue(self.queue, durable=True)
        await queue.consume(self._handler(node))
        closed = asyncio.ensure_future(_lost(connection))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not (closed.done() or stopping.done()):
                await asyncio.wait({closed, stopping}, timeout=self.ack_after)
                await self._ack()
        finally:
            closed.cancel()
            stopping.cancel()

    async def _ack(self) -> None:
        if self.unacked:
            last, self.unacked = self.unacked[-1], []
            with contextlib.suppress(*GONE):
                await last.ack(multiple=True)

    def _handler(
        self, node: PigeonNode
    ) -> Callable[[aio_pika.abc.AbstractIncomingMessage], Awaitable[None]]:
        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            self.history.delivered(
                Delivery(
                    message.body.decode(),
                    self.queue,
                    self.name,
                    node.name,
                    bool(message.redelivered),
                    time.monotonic(),
                )
            )
            self.unacked.append(message)
            if len(self.unacked) >= self.ack_every:
                await self._ack()

        return on_message


async def _lost(connection: aio_pika.abc.AbstractConnection) -> None:
    """Until the connection goes away (aio-pika's ``closed()`` only tells of a close
    asked for, not of a connection lost: its close callbacks are told of both)."""
    gone = asyncio.Event()
    connection.close_callbacks.add(lambda *_: gone.set())
    if connection.is_closed:
        return
    await gone.wait()
