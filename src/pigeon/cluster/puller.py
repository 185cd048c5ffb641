"""Fetching a stream queue's messages from its shared durable consumer.

One task per queue on this front-end: while the local consumers have room
(:meth:`StreamQueue.credit`) it asks JetStream for that many messages (a pull request
that waits up to ``PULL_WAIT`` seconds) and hands them to the queue. While messages
are leased here it tells JetStream it is still working on them (``+WPI``) every third
of ``ack_wait``, so that only a front-end that stopped (died, lost its connection)
has its messages come back, ``ack_wait`` seconds later. With nothing to fetch it
refreshes the queue's ready count from the consumer's ``num_pending``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import nats.errors

from pigeon.cluster.streams import placement

if TYPE_CHECKING:
    from nats.js.client import JetStreamContext

    from pigeon.cluster.queues import ClusterQueues
    from pigeon.cluster.stream_queue import StreamQueue

log = logging.getLogger(__name__)

PULL_WAIT = 1.0  # seconds a pull request waits on the server for messages
IDLE_REFRESH = 2.0  # seconds between ready-count refreshes while nothing is wanted


class Puller:
    def __init__(self, queue: StreamQueue, cluster: ClusterQueues) -> None:
        self._queue = queue
        self._cluster = cluster
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._ready = asyncio.get_running_loop().create_future()
        self._stopped = False

    def start(self, created: asyncio.Task[None]) -> None:
        self._tasks = [
            asyncio.create_task(self._run(created), name=f"pigeon-pull-{self._queue.name}"),
            asyncio.create_task(self._keep_leases(), name=f"pigeon-wpi-{self._queue.name}"),
        ]

    def stop(self) -> None:
        # (Also a flag: a cancelled fetch may surface as a timeout, not a cancellation.)
        self._stopped = True
        for task in self._tasks:
            task.cancel()
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            task = asyncio.get_running_loop().create_task(_unsubscribe(subscription))
            self._tasks = [task]

    def want(self) -> None:
        self._wake.set()

    async def fetch_for_get(self, timeout: float) -> None:
        """Pull one message for a basic.get (none if the stream has none within
        ``timeout``)."""
        await asyncio.shield(self._ready)
        queue = self._queue
        queue.wants_get += 1
        try:
            await self._pull(1, timeout)
        finally:
            queue.wants_get -= 1

    async def _run(self, created: asyncio.Task[None]) -> None:
        queue, cluster = self._queue, self._cluster
        # Shielded: a queue deleted at once stops this task, and the creation must still
        # end (its ledger position holds every reply and confirm of the node until then).
        await asyncio.shield(created)
        names = queue.names
        delay = 0.2
        while self._subscription is None and not self._stopped:
            try:
                self._subscription = await cluster.js.pull_subscribe_bind(
                    durable=names.consumer, stream=names.stream
                )
            except Exception as error:  # reconnecting, or no leader yet: again
                log.warning("binding to %s: %s (retrying)", names.stream, error)
                await asyncio.sleep(delay)
                delay = min(2 * delay, 5.0)
        self._ready.set_result(None)
        while not (queue.deleted or self._stopped):
            credit = queue.credit()
            if credit <= 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), IDLE_REFRESH)
                except TimeoutError:
                    await self._refresh()
                continue
            try:
                await self._pull(credit, PULL_WAIT)
            except Exception:  # a bug, or an error nats-py raises that is not its own
                log.exception("pulling from %s", names.stream)
                await asyncio.sleep(0.5)

    async def _pull(self, count: int, wait: float) -> None:
        subscription = self._subscription
        if subscription is None:
            return
        epoch = self._queue.epoch
        try:
            fetched = await subscription.fetch(count, timeout=wait)
        except (nats.errors.TimeoutError, TimeoutError):
            await asyncio.sleep(0)  # (a closed connection times out at once: yield)
            return
        except nats.errors.Error as error:  # reconnecting, leader election: try again
            if self._stopped:
                return
            log.info("pull from %s: %s", self._queue.names.stream, error)
            await asyncio.sleep(0.2)
            return
        self._queue.take(fetched, epoch)

    async def _refresh(self) -> None:
        queue = self._queue
        names = queue.names
        if queue.deleted or queue.consumers:
            return
        epoch = queue.epoch
        with contextlib.suppress(Exception):
            answer = await self._cluster.api(
                f"$JS.API.CONSUMER.INFO.{names.stream}.{names.consumer}", None
            )
            queue.placement = placement(answer) or queue.placement
            ledger = self._cluster.ledger
            # (A publish not acknowledged yet may be counted twice; a purge since: stale.)
            if ledger.durable == ledger.written and epoch == queue.epoch:
                queue.backlog = int(answer.get("num_pending", queue.backlog))

    async def _keep_leases(self) -> None:
        queue, cluster = self._queue, self._cluster
        interval = cluster.settings.ack_wait / 3
        while True:
            await asyncio.sleep(interval)
            for reply in list(queue.leases.values()):
                cluster.publisher.send(reply, b"+WPI")


async def _unsubscribe(subscription: JetStreamContext.PullSubscription) -> None:
    with contextlib.suppress(Exception):
        await subscription.unsubscribe()
