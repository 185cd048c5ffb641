"""Messages handed out in process: ``get`` results, consumers, acks and rejects.

A :class:`Subscription` is a core consumer with a bounded buffer; its prefetch
limit counts messages buffered plus handed out and not yet settled, as AMQP's
``basic.qos`` prefetch-count does (amqp0-9-1 §1.8.3.1).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
from collections import deque
from collections.abc import Callable, Generator
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Self

from pigeon.core.consumer import Consumer
from pigeon.core.queue import Entry, Queue
from pigeon.embedded.bridge import nudge, on_loop, submit
from pigeon.embedded.properties import MessageProperties, view
from pigeon.operations.client import Client

if TYPE_CHECKING:
    from pigeon.core.node import Node
    from pigeon.embedded.operations import Operations

DEFAULT_PREFETCH = 10
_consumer_tags = itertools.count(1)


class Settlement:
    """An ack or reject: applied at once on the broker's loop, else scheduled onto it.

    ``await`` it to wait until the broker has applied it; code that is not async
    may ignore it (later calls to the broker run after it, in order).
    """

    __slots__ = ("_future",)

    def __init__(self, loop: asyncio.AbstractEventLoop, action: Callable[[], None]) -> None:
        self._future: concurrent.futures.Future[None] | None = None
        if on_loop(loop):
            action()
        else:
            self._future = submit(loop, action)

    def __await__(self) -> Generator[Any, None, None]:
        if self._future is not None:
            yield from asyncio.wrap_future(self._future).__await__()

    def wait(self, timeout: float | None = None) -> None:
        """Block until applied (for code that is not async)."""
        if self._future is not None:
            self._future.result(timeout)


class ReceivedMessage:
    """A message taken from a queue by ``get`` or ``consume``; settle it with ack or reject.

    A message dropped without being settled goes back to its queue (marked
    redelivered), as an AMQP channel's unacknowledged messages do when it closes.
    """

    __slots__ = (
        "_entry",
        "_inbox",
        "_loop",
        "_queue",
        "_settled",
        "body",
        "exchange",
        "properties",
        "queue",
        "redelivered",
        "routing_key",
    )

    def __init__(
        self,
        entry: Entry,
        queue: Queue,
        loop: asyncio.AbstractEventLoop,
        inbox: _Inbox | None,
        settled: bool,
    ) -> None:
        self._settled = settled
        message = entry.message
        self.body: bytes = message.body
        self.properties: MessageProperties = view(message.properties)
        self.routing_key: str = message.routing_key
        self.exchange: str = message.exchange
        self.redelivered: bool = entry.redelivered
        self.queue: str = queue.name
        self._entry, self._queue, self._loop, self._inbox = entry, queue, loop, inbox

    def __repr__(self) -> str:
        return (
            f"<ReceivedMessage from {self.queue!r} routing_key={self.routing_key!r} "
            f"body={self.body[:40]!r}>"
        )

    @property
    def settled(self) -> bool:
        return self._settled

    def ack(self) -> Settlement:
        """Acknowledge: the broker forgets the message."""
        return self._settle(ack=True, requeue=False)

    def reject(self, *, requeue: bool = False) -> Settlement:
        """Give the message back (``requeue=True``) or drop it (dead-lettered if configured)."""
        return self._settle(ack=False, requeue=requeue)

    def _settle(self, *, ack: bool, requeue: bool) -> Settlement:
        if self._settled:
            raise RuntimeError("message already acknowledged or rejected (or taken with no_ack)")
        self._settled = True
        return Settlement(self._loop, lambda: self._apply(ack, requeue))

    def _apply(self, ack: bool, requeue: bool) -> None:
        queue, entry, inbox = self._queue, self._entry, self._inbox
        if inbox is not None:
            inbox.outstanding -= 1
        Client.settle(queue, [entry], ack=ack, requeue=requeue)
        queue.dispatch()  # room again under the consumer's prefetch
        if inbox is not None and inbox.node is not None:
            nudge(inbox.node)

    def __del__(self) -> None:
        if not self._settled:
            self._settled = True
            with suppress(RuntimeError):  # else the broker is gone, and the message with it
                self._loop.call_soon_threadsafe(self._apply, False, True)


class _Inbox(Consumer):
    """The core consumer behind a :class:`Subscription`: a bounded buffer of deliveries."""

    __slots__ = ("buffer", "node", "outstanding", "prefetch", "stopped", "waiter")

    def __init__(self, node: Node, prefetch: int, no_ack: bool) -> None:
        super().__init__(f"pigeon.embedded-{next(_consumer_tags)}", no_ack=no_ack)
        self.node: Node | None = node
        self.prefetch = prefetch
        self.buffer: deque[Entry] = deque()
        self.outstanding = 0  # buffered plus handed out and not yet settled
        self.stopped = False
        self.waiter: asyncio.Future[None] | None = None

    def can_deliver(self) -> bool:
        if self.stopped:
            return False
        if self.no_ack:
            return len(self.buffer) < self.prefetch
        return self.outstanding < self.prefetch

    def room(self) -> int:
        if self.stopped:
            return 0
        return self.prefetch - (len(self.buffer) if self.no_ack else self.outstanding)

    def deliver(self, queue: Queue, entry: Entry) -> None:
        self.buffer.append(entry)
        if not self.no_ack:
            self.outstanding += 1
        self.wake()

    def cancelled_by_broker(self) -> None:
        """The queue was deleted: its messages went with it; the iteration ends."""
        self.stopped = True
        self.buffer.clear()
        self.wake()

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def stop(self) -> None:
        """Leave the queue; buffered messages go back to it."""
        if self.stopped:
            return
        self.stopped = True
        queue = self.queue
        if queue is not None:
            queue.remove_consumer(self)
            entries = list(self.buffer)
            self.buffer.clear()
            if entries and not self.no_ack:
                self.outstanding -= len(entries)
                queue.requeue(entries)
        self.wake()


class Subscription:
    """``async for message in broker.consume(queue)``: deliveries under a prefetch limit.

    The consumer starts at the first iteration (or ``async with``) and stops when
    the ``async with`` block ends, on :meth:`close`, or when the subscription is
    garbage-collected (``break`` out of a bare ``async for``).
    """

    def __init__(self, api: Operations, queue: str, prefetch: int, no_ack: bool) -> None:
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        self._api = api
        self._queue = queue
        self._prefetch = prefetch
        self._no_ack = no_ack
        self._inbox: _Inbox | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ReceivedMessage:
        if self._closed:
            raise StopAsyncIteration
        message = await self._api._run_waiting(self._next_on_loop)
        if message is None:
            raise StopAsyncIteration
        return message

    async def __aenter__(self) -> Self:
        await self._api._run(self._start)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop consuming; messages buffered but not yet handed out go back to the queue."""
        if not self._closed:
            await self._api._run(self._stop_now)

    def _stop_now(self) -> None:
        self._closed = True
        if self._inbox is not None:
            self._inbox.stop()

    def _start(self) -> _Inbox:
        if self._inbox is None:
            broker = self._api._place()[0]
            client = self._api._client()
            queue = client.queue_to_read(self._queue)
            inbox = _Inbox(broker._require_node(), self._prefetch, self._no_ack)
            client.consume(queue, inbox)
            self._inbox, self._loop = inbox, broker._broker_loop()
        return self._inbox

    async def _next_on_loop(self) -> ReceivedMessage | None:
        inbox = self._start()
        assert self._loop is not None
        while not inbox.buffer:
            if inbox.stopped:
                return None
            inbox.waiter = self._loop.create_future()
            try:
                await inbox.waiter
            finally:
                inbox.waiter = None
        entry = inbox.buffer.popleft()
        queue = inbox.queue
        assert queue is not None
        message = ReceivedMessage(entry, queue, self._loop, inbox, settled=self._no_ack)
        if self._no_ack:
            queue.dispatch()
        return message

    def __del__(self) -> None:
        inbox, loop = self._inbox, self._loop
        if inbox is not None and loop is not None and not self._closed:
            with suppress(RuntimeError):  # else the broker is gone
                loop.call_soon_threadsafe(inbox.stop)
